/*
 * libFuzzer target: the request-head parser (rp_h1_parse_request) and
 * rp_h1_framing, on a stream of pipelined requests. See h1_head.h for what is
 * checked, fuzz/README.md for how to run it.
 */
#include "h1_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return head_fuzz(data, size, 0);
}
