/*
 * The directive setters the limit modules share: each limit has a `*_status` and a
 * `*_log_level` directive of the same form (limit_req, limit_conn, limit_count), set
 * into an int field of the module's location configuration named by the command's
 * offset, as rp_conf_set_flag does. The messages are nginx's.
 */
#include "core/log.h"
#include "limit/limit.h"

#include <string.h>

#define INT_FIELD(conf, cmd) ((int *)((char *)(conf) + (cmd)->offset))

const char *rp_limit_set_status(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    int *f = INT_FIELD(conf, cmd);
    long v;
    if (*f != RP_CONF_UNSET)
        return "duplicate directive";
    if (rp_parse_int(cf->argv[1], 999, &v) != 0 || v < 400 || v > 599)
        return rp_conf_error(cf, "value must be between 400 and 599");
    *f = (int)v;
    return RP_CONF_OK;
}

const char *rp_limit_set_log_level(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"info", RP_LOG_INFO},
                  {"notice", RP_LOG_NOTICE},
                  {"warn", RP_LOG_WARN},
                  {"error", RP_LOG_ERR}};
    int *f = INT_FIELD(conf, cmd);
    if (*f != RP_CONF_UNSET)
        return "duplicate directive";
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(cf->argv[1], levels[i].name) == 0) {
            *f = levels[i].level;
            return RP_CONF_OK;
        }
    }
    return rp_conf_error(cf, "invalid value \"%s\", it must be info, notice, warn or error",
                         cf->argv[1]);
}
