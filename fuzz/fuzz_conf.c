/*
 * libFuzzer target: the configuration language, lexer to postconfiguration.
 *
 * An input is the text of a configuration file. It is loaded exactly as `rampart -t`
 * and a start load it (rp_cycle_load: every module's preconfiguration, the lexer,
 * the parser dispatching each directive to its module's setter, value parsing,
 * inheritance and merging, every module's init_main and postconfiguration: routing
 * tables, regexes, variables, Lua chunks compiled), and the cycle is freed. Nothing
 * is started: no socket is bound, no shared memory mapped, no file written, no
 * process forked; host names resolve only when numeric (rig.c), so nothing leaves
 * the machine.
 *
 * A refusal is fine; it must say why (a non-empty message). A crash, a leak (what a
 * refused or freed configuration leaves behind) or undefined behaviour is a failure.
 * A configuration that loads must load again the same from the same text (a parse that
 * depends on leftovers of the previous one would not).
 */
#include "fuzz.h"
#include "rig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[2048];
    err[0] = '\0';
    rp_cycle_t *cycle = rig_load("rampart.conf", (const char *)data, size, err, sizeof(err));
    if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "fuzz_conf: %s\n", cycle ? "loaded" : err);
    if (cycle == NULL) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    rp_cycle_destroy(cycle);
    char err2[2048];
    err2[0] = '\0';
    cycle = rig_load("rampart.conf", (const char *)data, size, err2, sizeof(err2));
    if (cycle == NULL)
        fprintf(stderr, "fuzz: second load refused: %s\n", err2);
    FUZZ_CHECK(cycle != NULL);
    rp_cycle_destroy(cycle);
    return 0;
}
