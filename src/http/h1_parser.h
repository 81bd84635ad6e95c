/*
 * Incremental, strict HTTP/1.x request-head parser. It is fed the bytes received
 * so far (the same growing buffer each time) and resumes where it stopped, so no
 * byte is examined twice. Results are offsets into that buffer, so the caller may
 * grow (move) it between calls. It touches no socket and allocates nothing.
 *
 * Strictness is the point: anything a backend might read differently from us is
 * refused (bare CR, NUL, obs-fold, whitespace before a colon, control bytes in a
 * target or value). A bare LF is accepted as a line end (RFC 9112 section 2.2),
 * because rampart re-serializes every head and never forwards the raw bytes.
 */
#ifndef RP_H1_PARSER_H
#define RP_H1_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define RP_H1_MAX_HEADERS 100

typedef struct {
    uint32_t off, len;
} rp_span_t;

typedef struct {
    rp_span_t name, value;
} rp_h1_header_t;

typedef enum {
    RP_H1_AGAIN = 0, /* need more bytes */
    RP_H1_DONE = 1,  /* the head is complete; consumed bytes in parser->pos */
    RP_H1_ERROR = -1,
} rp_h1_result_t;

typedef struct {
    /* limits, set before the first call */
    uint32_t max_line;   /* request line longer: 414 */
    uint32_t max_header; /* one header line longer, or the whole head: 431 */
    uint32_t max_head;

    /* results */
    rp_span_t method, target;
    int version; /* 10, 11 */
    rp_h1_header_t headers[RP_H1_MAX_HEADERS];
    unsigned nheaders;
    int code;           /* response parser: the status code */
    rp_span_t phrase;   /* response parser: the reason phrase */
    unsigned response;  /* parsing a response head */
    int status;         /* with RP_H1_ERROR: 400, 414, 431, 505 (502 for a response) */
    const char *reason; /* with RP_H1_ERROR: what was wrong, for the log */

    /* state */
    uint32_t pos;
    uint32_t line_start;
    uint32_t value_end; /* last non-blank byte of the current value */
    int state;
} rp_h1_parser_t;

/* Prepares p for a new request head with the given limits. */
void rp_h1_parser_init(rp_h1_parser_t *p, uint32_t max_line, uint32_t max_head);

/* Prepares p for an upstream response head ("HTTP/1.x NNN reason"). */
void rp_h1_response_parser_init(rp_h1_parser_t *p, uint32_t max_head);

/*
 * Parses buf[0..len) (the whole head received so far; earlier bytes unchanged).
 * Returns RP_H1_DONE when the head ends (p->pos is the offset of the first body
 * byte), RP_H1_AGAIN, or RP_H1_ERROR with p->status and p->reason.
 */
rp_h1_result_t rp_h1_parse_request(rp_h1_parser_t *p, const char *buf, size_t len);

/* A response head uses the same call; p->code and p->version describe it. */
#define rp_h1_parse_response rp_h1_parse_request

/* What a parsed head says about its message framing and connection. */
typedef struct {
    int64_t content_length; /* -1 when absent */
    unsigned chunked : 1;
    unsigned te : 1;         /* a Transfer-Encoding header was present */
    unsigned conn_close : 1; /* Connection: close */
    unsigned conn_keepalive : 1;
    unsigned conn_upgrade : 1;
    unsigned expect_continue : 1;
    unsigned hosts;          /* number of Host headers */
    int host;                /* index of the Host header, -1 for none */
} rp_h1_framing_t;

/*
 * Reads the framing headers of a parsed head (Content-Length, Transfer-Encoding,
 * Connection, Host, Expect) and refuses every ambiguity a peer could read
 * differently: several or malformed Content-Length, Content-Length with
 * Transfer-Encoding, a coding other than one final "chunked", Transfer-Encoding in
 * HTTP/1.0, and for requests a missing or repeated Host. Returns 0, or the status
 * to answer (400, 417, 501; 502 for responses) with *why set.
 */
int rp_h1_framing(const rp_h1_parser_t *p, const char *buf, rp_h1_framing_t *f, const char **why);

/* Whether a comma-separated header value lists token (case-insensitive). */
int rp_h1_token_list_has(const char *v, size_t len, const char *token);

/* Incremental chunked transfer-coding decoder (RFC 9112 section 7.1). */
typedef struct {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    uint32_t line_len;  /* bytes in the current size or trailer line, bounded */
    int seen_digit;
    const char *reason; /* with an error */
} rp_chunked_t;

void rp_chunked_init(rp_chunked_t *c);

/*
 * Decodes in place: reads buf[0..*len), moves the data bytes to the front and
 * sets *len to their number; *consumed gets the input bytes used. Returns 1 when
 * the last chunk and the trailers have been read, 0 when more input is needed, -1
 * on malformed input (c->reason says why).
 */
int rp_chunked_decode(rp_chunked_t *c, char *buf, size_t *len, size_t *consumed);

/* Case-insensitive comparison of a span with a NUL-terminated lowercase string. */
int rp_span_ieq(const char *buf, rp_span_t s, const char *lower);

#endif
