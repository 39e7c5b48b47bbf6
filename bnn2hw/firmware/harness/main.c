/* SPDX-License-Identifier: MIT */
/*
 * main.c -- bnn2hw inference harness, one file for Cortex-M (semihosting) and the host
 * (stdio).  Protocol, relative to the working directory:
 *   reads  inputs.bin : N * BNN_INPUT_LEN bytes (N >= 0; a partial record is an error)
 *   writes logits.bin : N * BNN_NUM_LOGITS little-endian int32
 *   returns 0, or 2 (cannot open/write a file), 3 (partial record), 4 (bnn_infer < 0).
 * The FIRST inference is bracketed by bnn_marker_begin()/bnn_marker_end(); before it the
 * pair is called once back to back (calibration).  Instruction count of one inference =
 * (instructions from entering begin to entering end, around the inference) minus the
 * same for the calibration pair; see bnn2hw/mcu/qemu.py count_instructions().
 * The model (model.h / model.c) is generated and defines BNN_INPUT_LEN, BNN_NUM_LOGITS
 * and bnn_infer().
 */
#include <stddef.h>
#include <stdint.h>

#ifdef BNN_NAMED_MODEL
#include "bnn_harness_model.h" /* maps the names below to the model's NAME_* (emit-c --name) */
#else
#include "model.h"
#endif

#if defined(__arm__) && !defined(BNN_HOST)
#include "bnn_harness.h"
typedef int bnn_file_t;
#define BNN_FILE_BAD(f) ((f) < 0)
static bnn_file_t file_open_read(const char *n) { return bnn_sh_open(n, BNN_OPEN_RB); }
static bnn_file_t file_open_write(const char *n) { return bnn_sh_open(n, BNN_OPEN_WB); }
static size_t file_read(bnn_file_t f, void *b, size_t n) { return bnn_sh_read(f, b, n); }
static size_t file_write(bnn_file_t f, const void *b, size_t n) { return bnn_sh_write(f, b, n); }
static void file_close(bnn_file_t f) { (void)bnn_sh_close(f); }
static void say(const char *s) { bnn_sh_puts(s); }
#else
#include <stdio.h>
typedef FILE *bnn_file_t;
#define BNN_FILE_BAD(f) ((f) == NULL)
static bnn_file_t file_open_read(const char *n) { return fopen(n, "rb"); }
static bnn_file_t file_open_write(const char *n) { return fopen(n, "wb"); }
static size_t file_read(bnn_file_t f, void *b, size_t n) { return fread(b, 1, n, f); }
static size_t file_write(bnn_file_t f, const void *b, size_t n) { return fwrite(b, 1, n, f); }
static void file_close(bnn_file_t f) { (void)fclose(f); }
static void say(const char *s) { (void)fputs(s, stderr); }
#endif

/* Distinct bodies so identical-code folding cannot merge the two markers. */
volatile uint32_t bnn_marker_count_begin;
volatile uint32_t bnn_marker_count_end;
__attribute__((noinline, noclone)) void bnn_marker_begin(void) { bnn_marker_count_begin++; }
__attribute__((noinline, noclone)) void bnn_marker_end(void) { bnn_marker_count_end++; }

static uint8_t input_buf[BNN_INPUT_LEN];
static int32_t logit_buf[BNN_NUM_LOGITS];
static uint8_t out_bytes[4 * BNN_NUM_LOGITS];

static size_t read_full(bnn_file_t f, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t r = file_read(f, buf + got, len - got);
        if (r == 0) {
            break;
        }
        got += r;
    }
    return got;
}

int main(void)
{
    bnn_file_t in = file_open_read("inputs.bin");
    if (BNN_FILE_BAD(in)) {
        say("bnn harness: cannot open inputs.bin\n");
        return 2;
    }
    bnn_file_t out = file_open_write("logits.bin");
    if (BNN_FILE_BAD(out)) {
        say("bnn harness: cannot open logits.bin\n");
        file_close(in);
        return 2;
    }
    int rc = 0;
    int first = 1;
    bnn_marker_begin(); /* calibration pair */
    bnn_marker_end();
    for (;;) {
        size_t got = read_full(in, input_buf, sizeof input_buf);
        if (got == 0) {
            break;
        }
        if (got != sizeof input_buf) {
            say("bnn harness: inputs.bin is not a multiple of BNN_INPUT_LEN\n");
            rc = 3;
            break;
        }
        int r;
        if (first) {
            bnn_marker_begin();
            r = bnn_infer(input_buf, sizeof input_buf, logit_buf, BNN_NUM_LOGITS);
            bnn_marker_end();
            first = 0;
        } else {
            r = bnn_infer(input_buf, sizeof input_buf, logit_buf, BNN_NUM_LOGITS);
        }
        if (r < 0) {
            say("bnn harness: bnn_infer failed\n");
            rc = 4;
            break;
        }
        for (size_t i = 0; i < BNN_NUM_LOGITS; ++i) {
            uint32_t v = (uint32_t)logit_buf[i];
            out_bytes[4 * i + 0] = (uint8_t)(v & 0xffu);
            out_bytes[4 * i + 1] = (uint8_t)((v >> 8) & 0xffu);
            out_bytes[4 * i + 2] = (uint8_t)((v >> 16) & 0xffu);
            out_bytes[4 * i + 3] = (uint8_t)(v >> 24);
        }
        if (file_write(out, out_bytes, sizeof out_bytes) != sizeof out_bytes) {
            say("bnn harness: cannot write logits.bin\n");
            rc = 2;
            break;
        }
    }
    file_close(in);
    file_close(out);
    return rc;
}
