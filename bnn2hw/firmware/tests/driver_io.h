/* SPDX-License-Identifier: MIT */
/*
 * driver_io.h -- the case-file protocol of the kernel test drivers (kernel_driver.c, vcols_driver.c),
 * included once by each driver after its headers.
 *
 * case.bin (little-endian 32-bit words): the number of cases, then per case its length in words and
 * its words; the driver's run_case() reads a case with u32()/take() and writes its results with
 * put() (poisoned first, so every output word must be written).  out.bin: per case the number of
 * result words, then the words.  Read over semihosting on Cortex-M, with stdio on the host.  Exit
 * codes: 0 ok, 2 no input / cannot write, 3 a malformed case or a case that read past its words.
 */
#ifndef BNN_DRIVER_IO_H
#define BNN_DRIVER_IO_H

#ifndef BUF_WORDS
#define BUF_WORDS (1u << 17)
#endif

static uint32_t in_buf[BUF_WORDS];
static uint32_t out_buf[BUF_WORDS];
static size_t in_words, rd, wr;

#if defined(__arm__) && !defined(BNN_HOST)
#include "bnn_harness.h"
static size_t load(void)
{
    int f = bnn_sh_open("case.bin", BNN_OPEN_RB);
    if (f < 0) {
        return 0;
    }
    size_t n = bnn_sh_read(f, in_buf, sizeof in_buf);
    (void)bnn_sh_close(f);
    return n;
}
static int save(void)
{
    int f = bnn_sh_open("out.bin", BNN_OPEN_WB);
    if (f < 0) {
        return -1;
    }
    size_t n = bnn_sh_write(f, out_buf, wr * 4u);
    (void)bnn_sh_close(f);
    return n == wr * 4u ? 0 : -1;
}
#else
#include <stdio.h>
static size_t load(void)
{
    FILE *f = fopen("case.bin", "rb");
    if (!f) {
        return 0;
    }
    size_t n = fread(in_buf, 1, sizeof in_buf, f);
    fclose(f);
    return n;
}
static int save(void)
{
    FILE *f = fopen("out.bin", "wb");
    if (!f) {
        return -1;
    }
    size_t n = fwrite(out_buf, 4, wr, f);
    fclose(f);
    return n == wr ? 0 : -1;
}
#endif

static int bad;

static const uint32_t *take(size_t words)
{
    if (rd + words > in_words) {
        bad = 1;
        return in_buf;
    }
    const uint32_t *p = in_buf + rd;
    rd += words;
    return p;
}

static uint32_t u32(void) { return *take(1); }

static void *put(size_t words)
{
    if (wr + words > BUF_WORDS) {
        bad = 1;
        return out_buf;
    }
    void *p = out_buf + wr;
    for (size_t i = 0; i < words; ++i) {
        out_buf[wr + i] = 0xA5A5A5A5u; /* poison: every output word must be written */
    }
    wr += words;
    return p;
}

#define W(n) BNN_WORDS(n)
#define BYTES_W(n) (((size_t)(n) + 3u) / 4u)

static int run_case(void);

int main(void)
{
    in_words = load() / 4u;
    if (in_words == 0) {
        return 2;
    }
    uint32_t cases = u32();
    for (uint32_t c = 0; c < cases && !bad; ++c) {
        size_t len = u32();
        size_t end = rd + len;
        if (end > in_words || wr + 1u > BUF_WORDS) {
            return 3;
        }
        size_t head = wr++;
        size_t saved = in_words;
        in_words = end; /* a case cannot read past its own words */
        int rc = run_case();
        in_words = saved;
        if (rc != 0 || bad || rd != end) {
            return 3;
        }
        out_buf[head] = (uint32_t)(wr - head - 1u);
    }
    if (bad) {
        return 3;
    }
    return save() == 0 ? 0 : 2;
}

#endif /* BNN_DRIVER_IO_H */
