/*
 * The exchange of one request with an upstream server over HTTP/2
 * (proxy_h2.c): for proxy_pass to an `http2` group, and for grpc_pass.
 */
#ifndef RP_PROXY_H2_H
#define RP_PROXY_H2_H

#include "upstream/proxy.h"

/*
 * Proxies r to plcf->upstream over HTTP/2 and returns RP_DONE. With grpc (grpc_pass),
 * or for a request whose Content-Type is application/grpc, the exchange is gRPC-aware:
 * grpc-timeout bounds it, trailers pass through, and rampart's own failures are gRPC
 * statuses.
 */
int rp_proxy_h2_handler(rp_request_t *r, rp_proxy_loc_conf_t *plcf, int grpc);

#endif
