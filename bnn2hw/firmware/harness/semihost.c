/* SPDX-License-Identifier: MIT */
/*
 * semihost.c -- ARM semihosting calls (BKPT 0xAB on M-profile): r0 = operation,
 * r1 = pointer to the parameter block, result in r0.  QEMU serves them with
 * -semihosting-config enable=on,target=native, relative to its working directory.
 */
#include "bnn_harness.h"

#include <string.h>

static int sh_call(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int bnn_sh_open(const char *name, int mode)
{
    uint32_t blk[3] = {(uint32_t)(uintptr_t)name, (uint32_t)mode, (uint32_t)strlen(name)};
    return sh_call(BNN_SYS_OPEN, blk);
}

int bnn_sh_close(int fd)
{
    uint32_t blk[1] = {(uint32_t)fd};
    return sh_call(BNN_SYS_CLOSE, blk);
}

size_t bnn_sh_read(int fd, void *buf, size_t len)
{
    uint32_t blk[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    int not_read = sh_call(BNN_SYS_READ, blk); /* returns the number of bytes NOT read */
    if (not_read < 0 || (size_t)not_read > len) {
        return 0;
    }
    return len - (size_t)not_read;
}

size_t bnn_sh_write(int fd, const void *buf, size_t len)
{
    uint32_t blk[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)buf, (uint32_t)len};
    int not_written = sh_call(BNN_SYS_WRITE, blk);
    if (not_written < 0 || (size_t)not_written > len) {
        return 0;
    }
    return len - (size_t)not_written;
}

void bnn_sh_puts(const char *s) { (void)sh_call(BNN_SYS_WRITE0, (void *)(uintptr_t)s); }

void bnn_sh_exit(int code)
{
    uint32_t blk[2] = {BNN_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    for (;;) {
        (void)sh_call(BNN_SYS_EXIT_EXTENDED, blk);
    }
}
