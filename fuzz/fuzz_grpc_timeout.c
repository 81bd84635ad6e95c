/*
 * libFuzzer target: the grpc-timeout header's value (rp_grpc_timeout_parse) and its
 * writer (rp_grpc_timeout_format), which bound a gRPC call's deadline.
 *
 * An input is the field's value as a client sent it. The parse is checked against the
 * grammar written out plainly (gRPC's PROTOCOL-HTTP2: TimeoutValue is 1 to 8 ASCII
 * digits, TimeoutUnit one of H M S m u n; the value in milliseconds, rounded up), so it
 * is never negative but for -1 on a malformed value, never overflows, and is bounded by
 * 99999999 hours. Then the round trip: what rampart writes upstream for a deadline must
 * itself parse, to at least the deadline (a rounded value may only lengthen it, never
 * shorten it to expire early), and never to more than the next unit up.
 */
#include "fuzz.h"
#include "http/grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MS (99999999LL * 3600000LL)

static int64_t reference(const uint8_t *v, size_t n)
{
    if (n < 2 || n > 9)
        return -1;
    int64_t x = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    switch (v[n - 1]) {
    case 'H':
        return x * 3600000;
    case 'M':
        return x * 60000;
    case 'S':
        return x * 1000;
    case 'm':
        return x;
    case 'u':
        return x / 1000 + (x % 1000 != 0);
    case 'n':
        return x / 1000000 + (x % 1000000 != 0);
    }
    return -1;
}

static void round_trip(int64_t ms)
{
    char buf[16];
    size_t k = rp_grpc_timeout_format(ms, buf);
    FUZZ_CHECK(k >= 2 && k <= 9);
    FUZZ_CHECK(buf[k] == '\0');
    char *copy = fuzz_copy((const uint8_t *)buf, k);
    int64_t back = rp_grpc_timeout_parse((rp_str_t){copy, k});
    free(copy);
    int64_t want = ms < 0 ? 0 : ms;
    FUZZ_CHECK(back >= 0);
    if (want <= MAX_MS) {
        FUZZ_CHECK(back >= want); /* never a shorter deadline than asked */
        /* the coarsest unit written is an hour, and only past 99999999 seconds */
        FUZZ_CHECK(back - want < (want > 99999999LL * 1000 ? 3600000 : 1000));
    } else {
        FUZZ_CHECK(back == MAX_MS); /* clamped to the largest value the format holds */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = fuzz_copy(data, size);
    int64_t ms = rp_grpc_timeout_parse((rp_str_t){v, size});
    free(v);
    FUZZ_CHECK(ms == reference(data, size));
    FUZZ_CHECK(ms == -1 || (ms >= 0 && ms <= MAX_MS));
    if (ms >= 0)
        round_trip(ms);
    /* the writer on arbitrary deadlines too: the input's first 8 bytes as one */
    if (size >= 8) {
        int64_t any;
        memcpy(&any, data, 8);
        round_trip(any);
    }
    return 0;
}
