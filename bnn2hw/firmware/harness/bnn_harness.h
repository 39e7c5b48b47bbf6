/* SPDX-License-Identifier: MIT */
/*
 * bnn_harness.h -- the platform layer of the test/benchmark harness (main.c).
 * On Cortex-M it is ARM semihosting (semihost.c); on the host it is stdio (main.c).
 */
#ifndef BNN_HARNESS_H
#define BNN_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Semihosting operation numbers (ARM "Semihosting for AArch32 and AArch64"). */
#define BNN_SYS_OPEN 0x01
#define BNN_SYS_CLOSE 0x02
#define BNN_SYS_WRITE0 0x04
#define BNN_SYS_WRITE 0x05
#define BNN_SYS_READ 0x06
#define BNN_SYS_EXIT_EXTENDED 0x20
#define BNN_ADP_STOPPED_APPLICATION_EXIT 0x20026

/* Open modes as in semihosting SYS_OPEN: 1 = "rb", 5 = "wb". */
#define BNN_OPEN_RB 1
#define BNN_OPEN_WB 5

int bnn_sh_open(const char *name, int mode);                /* fd >= 0 or -1 */
int bnn_sh_close(int fd);                                    /* 0 or -1 */
size_t bnn_sh_read(int fd, void *buf, size_t len);           /* bytes read */
size_t bnn_sh_write(int fd, const void *buf, size_t len);    /* bytes written */
void bnn_sh_puts(const char *s);                             /* message to stderr/console */
void bnn_sh_exit(int code) __attribute__((noreturn));       /* status -> QEMU exit code */

#endif /* BNN_HARNESS_H */
