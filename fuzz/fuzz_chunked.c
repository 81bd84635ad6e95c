/*
 * libFuzzer target: the chunked transfer-coding decoder (rp_chunked_decode).
 *
 * An input is a chunked body. It is decoded whole, then fed in pieces (each
 * piece in its own exact-size buffer, decoded in place as the connection does);
 * the result, the reason of a refusal, the bytes used and the decoded bytes must
 * not depend on the cuts. Both are also compared with a plain, whole-buffer
 * reading of the same grammar (ref_decode below), so a decoder that agrees with
 * itself but frames a body differently from what it documents is caught too.
 */
#include "fuzz.h"
#include "http/h1_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* CHUNK_LINE_MAX in h1_parser.c: the longest size or trailer line, CRLF included */
#define LINE_MAX_BYTES 4096

typedef struct {
    int rc;
    const char *reason;
    size_t consumed;
    size_t len; /* decoded bytes in data */
    char *data;
} decoded_t;

/* Decodes data[0..size) cut at cuts[], appending the decoded bytes to d->data. */
static void decode(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts, decoded_t *d)
{
    rp_chunked_t c;
    rp_chunked_init(&c);
    d->rc = 0;
    d->consumed = d->len = 0;
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : size;
        size_t n = end - start;
        char *piece = fuzz_copy(data + start, n);
        size_t out = n, used = 0;
        d->rc = rp_chunked_decode(&c, piece, &out, &used);
        FUZZ_CHECK(d->rc == -1 || d->rc == 0 || d->rc == 1);
        FUZZ_CHECK(used <= n && out <= used); /* in place: output never overtakes input */
        memcpy(d->data + d->len, piece, out);
        free(piece);
        d->len += out;
        d->consumed += used;
        start = end;
        if (d->rc != 0)
            break;
        FUZZ_CHECK(used == n); /* more needed: the whole piece was taken */
    }
    d->reason = c.reason;
    FUZZ_CHECK(d->rc != -1 || d->reason != NULL);
}

/*
 * The decoder's grammar read straight through a complete buffer: 1*HEXDIG size (a
 * value that cannot take one more digit is an overflow), then CRLF, or SP, HTAB or
 * ";" and an extension free of LF, NUL and DEL up to CR LF; the data and CRLF;
 * after the zero-size chunk, trailer lines that start with a visible character and
 * hold no LF or NUL, then CRLF. No line may exceed LINE_MAX_BYTES. Returns 1, 0
 * (incomplete) or -1, with *consumed the bytes read, the refused byte included.
 */
static int ref_decode(const uint8_t *d, size_t len, char *out, size_t *outlen, size_t *consumed)
{
    size_t i = 0, line = 0, o = 0;
    int rc;
    uint8_t c;

#define GET()                                                                                      \
    do {                                                                                           \
        if (i >= len) {                                                                            \
            rc = 0;                                                                                \
            goto end;                                                                              \
        }                                                                                          \
        c = d[i++];                                                                                \
        if (++line > LINE_MAX_BYTES) {                                                             \
            rc = -1;                                                                               \
            goto end;                                                                              \
        }                                                                                          \
    } while (0)
#define BAD()                                                                                      \
    do {                                                                                           \
        rc = -1;                                                                                   \
        goto end;                                                                                  \
    } while (0)

    for (;;) {
        uint64_t size = 0;
        int digits = 0;
        for (;;) {
            GET();
            int v = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
            if (v >= 0) {
                if (size > (1ULL << 59))
                    BAD();
                size = size * 16 + (uint64_t)v;
                digits++;
                continue;
            }
            if (!digits)
                BAD();
            /* whitespace after the digits may only lead to ";" or the line end */
            while (c == ' ' || c == '\t') {
                GET();
                if (c != ' ' && c != '\t' && c != ';' && c != '\r')
                    BAD();
            }
            if (c == ';') {
                for (;;) {
                    GET();
                    if (c == '\r')
                        break;
                    if (c == '\n' || c == 0 || c == 0x7f)
                        BAD();
                }
                break;
            }
            if (c == '\r')
                break;
            BAD();
        }
        GET();
        if (c != '\n')
            BAD();
        line = 0;
        if (size == 0)
            break;
        if (size > len - i) {
            memcpy(out + o, d + i, len - i);
            o += len - i;
            i = len;
            rc = 0;
            goto end;
        }
        memcpy(out + o, d + i, (size_t)size);
        o += (size_t)size;
        i += (size_t)size;
        GET();
        if (c != '\r')
            BAD();
        GET();
        if (c != '\n')
            BAD();
        line = 0;
    }
    for (;;) {
        GET();
        if (c == '\r') {
            GET();
            if (c != '\n')
                BAD();
            rc = 1;
            goto end;
        }
        if (!(c > 0x20 && c < 0x7f))
            BAD();
        for (;;) {
            GET();
            if (c == '\r')
                break;
            if (c == '\n' || c == 0)
                BAD();
        }
        GET();
        if (c != '\n')
            BAD();
        line = 0;
    }
#undef GET
#undef BAD
end:
    *outlen = o;
    *consumed = i;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static size_t cuts[FUZZ_MAX_CUTS];
    decoded_t whole = {.data = malloc(size + 1)}, split = {.data = malloc(size + 1)};
    FUZZ_CHECK(whole.data && split.data);

    decode(data, size, NULL, 0, &whole);

    size_t ref_len = 0, ref_used = 0;
    int ref = ref_decode(data, size, split.data, &ref_len, &ref_used);
    FUZZ_CHECK(ref == whole.rc);
    FUZZ_CHECK(ref_used == whole.consumed);
    FUZZ_CHECK(ref_len == whole.len && memcmp(split.data, whole.data, ref_len) == 0);

    uint64_t seed = fuzz_hash(data, size, 1);
    for (int kind = 0; kind < CUT_KINDS; kind++) {
        size_t n = fuzz_cuts((fuzz_cut_kind_t)kind, data, size, seed, cuts);
        decode(data, size, cuts, n, &split);
        FUZZ_CHECK(split.rc == whole.rc);
        FUZZ_CHECK(split.consumed == whole.consumed);
        FUZZ_CHECK(split.len == whole.len && memcmp(split.data, whole.data, whole.len) == 0);
        if (whole.rc == -1)
            FUZZ_CHECK(strcmp(split.reason, whole.reason) == 0);
    }
    free(whole.data);
    free(split.data);
    return 0;
}
