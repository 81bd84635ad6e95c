/*
 * libFuzzer target: the upstream response-head parser (rp_h1_response_parser_init
 * + rp_h1_parse_response) and rp_h1_framing, on a stream of responses as a
 * backend would send them (1xx interim heads, bodies, keep-alive). See h1_head.h
 * for what is checked, fuzz/README.md for how to run it.
 */
#include "h1_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return head_fuzz(data, size, 1);
}
