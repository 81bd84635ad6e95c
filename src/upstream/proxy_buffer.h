/*
 * Buffering for proxy_pass, as nginx's defaults (proxy_buffer.c): the directives
 * proxy_buffering, proxy_buffers, proxy_busy_buffers_size, proxy_max_temp_file_size,
 * proxy_temp_file_write_size, proxy_temp_path, proxy_request_buffering,
 * proxy_http_version, client_body_buffer_size, client_body_temp_path,
 * client_body_in_file_only and client_body_in_single_buffer; and the response buffer
 * the HTTP/1 exchange (proxy.c) fills from the upstream while the client is slower.
 */
#ifndef RP_PROXY_BUFFER_H
#define RP_PROXY_BUFFER_H

#include "http/request.h"

#include <sys/types.h>

typedef struct {
    int buffering;              /* proxy_buffering */
    int request_buffering;      /* proxy_request_buffering */
    size_t nbufs, bufsize;      /* proxy_buffers N SIZE: the response's memory is N * SIZE */
    size_t busy_size;           /* proxy_busy_buffers_size (checked, as nginx) */
    size_t max_temp;            /* proxy_max_temp_file_size; 0: no temporary file */
    size_t temp_write_size;     /* proxy_temp_file_write_size: written per event at most */
    const char *temp_path;      /* proxy_temp_path */
    size_t body_buffer_size;    /* client_body_buffer_size */
    const char *body_temp_path; /* client_body_temp_path */
    int body_in_file_only, body_in_single_buffer;
    int http_version; /* proxy_http_version: 10 or 11 */
} rp_proxy_buf_conf_t;

extern rp_module_t rp_proxy_buffer_module;

#define rp_proxy_buf_conf(r)                                                                       \
    ((const rp_proxy_buf_conf_t *)(r)->loc_conf[rp_proxy_buffer_module.index])

/*
 * The response bytes the client has not taken yet, read from the upstream ahead of it:
 * up to N * SIZE in memory, then up to proxy_max_temp_file_size in a temporary file,
 * first in, first out. Freed with the request.
 */
typedef struct rp_rbuf_s rp_rbuf_t;

rp_rbuf_t *rp_rbuf_new(rp_request_t *r, const rp_proxy_buf_conf_t *c);
/* Bytes held. */
size_t rp_rbuf_len(const rp_rbuf_t *b);
/* How many more bytes it takes (0: the upstream must wait for the client). */
size_t rp_rbuf_room(const rp_rbuf_t *b);
/* Keeps data (at most room bytes). Returns 0, or -1 when the file could not be written
 * (logged). */
int rp_rbuf_put(rp_rbuf_t *b, const char *data, size_t n);
/* Bytes written to the file since the last call (the reader yields past a bound). */
size_t rp_rbuf_file_written(rp_rbuf_t *b);
/* Writes held bytes to the client until it is behind or none are left. Returns 0, or
 * -1 when the response cannot go on (the client is gone, a read failed). */
int rp_rbuf_send(rp_rbuf_t *b);

#endif
