/* SPDX-License-Identifier: MIT */
/* Reads one input (BNN_INPUT_LEN bytes, the C input layout of model.h) from the file named on
 * the command line, runs the generated model and prints its integer logits and the predicted
 * class. */
#include <stdint.h>
#include <stdio.h>

#include "model.h"

int main(int argc, char **argv)
{
    static uint8_t input[BNN_INPUT_LEN];
    int32_t logits[BNN_NUM_LOGITS];
    FILE *f;
    unsigned c;
    if (argc != 2 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: classify INPUT.bin\n");
        return 2;
    }
    if (fread(input, 1, sizeof input, f) != sizeof input) {
        fprintf(stderr, "classify: %s is shorter than %u bytes\n", argv[1], (unsigned)BNN_INPUT_LEN);
        fclose(f);
        return 2;
    }
    fclose(f);
    if (bnn_infer(input, sizeof input, logits, BNN_NUM_LOGITS) != BNN_OK) {
        return 3;
    }
    for (c = 0; c < BNN_NUM_LOGITS; ++c) {
        printf("%ld ", (long)logits[c]);
    }
    printf("\nclass %d\n", bnn_predict(input, sizeof input));
    return 0;
}
