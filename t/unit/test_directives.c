/*
 * The directive tables every module declares. A malformed entry (no setter, an
 * impossible argument range, a context its configuration level cannot serve, two
 * entries fighting over one name) would only show when someone writes that
 * directive, so every entry of every module is checked here, and then fed to the
 * loader in every context to show the parser enforces what the table says.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    unsigned ctx;
    const char *name; /* as the parser names it */
    const char *wrap; /* a configuration placing "%s" in that context */
    unsigned line;    /* the line "%s" is on */
} context_t;

static const context_t contexts[] = {
    {RP_CTX_MAIN, "main", "%s\n", 1},
    {RP_CTX_EVENTS, "events", "events {\n%s\n}\n", 2},
    {RP_CTX_HTTP, "http", "http {\n%s\n}\n", 2},
    {RP_CTX_SERVER, "server", "http {\nserver {\nlisten 127.0.0.1:8080;\n%s\n}\n}\n", 4},
    {RP_CTX_LOCATION, "location",
     "http {\nserver {\nlisten 127.0.0.1:8080;\nlocation / {\n%s\n}\n}\n}\n", 5},
    {RP_CTX_UPSTREAM, "upstream", "http {\nupstream u {\nserver 127.0.0.1:8081;\n%s\n}\n}\n", 4},
    {RP_CTX_SIF, "if", "http {\nserver {\nlisten 127.0.0.1:8080;\nif ($host) {\n%s\n}\n}\n}\n", 5},
    {RP_CTX_LIF, "if",
     "http {\nserver {\nlisten 127.0.0.1:8080;\nlocation / {\nif ($host) {\n%s\n}\n}\n}\n}\n", 6},
};
#define NCONTEXTS (sizeof(contexts) / sizeof(contexts[0]))

#define FOR_EACH_COMMAND(m, cmd)                                                                   \
    for (size_t m = 0; m < rp_nmodules; m++)                                                       \
        for (const rp_command_t *cmd = rp_modules[m]->commands; cmd && cmd->name; cmd++)

/* Every context some command of that name allows. */
static unsigned contexts_of(const char *name)
{
    unsigned ctx = 0;
    FOR_EACH_COMMAND(m, cmd)
    {
        if (strcmp(cmd->name, name) == 0)
            ctx |= cmd->ctx;
    }
    return ctx;
}

/* Loads "NAME ARGS;" (or "NAME ARGS {}" for a block directive) placed in c. */
static rp_cycle_t *load_in(const context_t *c, const rp_command_t *cmd, const char *args)
{
    char directive[256], text[1024];
    snprintf(directive, sizeof(directive), "%s%s%s%s", cmd->name, args[0] ? " " : "", args,
             (cmd->flags & RP_CMD_BLOCK) ? " {\n}" : ";");
    snprintf(text, sizeof(text), c->wrap, directive);
    return ut_load(text);
}

static const context_t *first_allowed(const rp_command_t *cmd)
{
    for (size_t i = 0; i < NCONTEXTS; i++)
        if (cmd->ctx & contexts[i].ctx)
            return &contexts[i];
    return NULL;
}

/* "x x x": n placeholder arguments. */
static const char *args_of(unsigned n)
{
    static char buf[64];
    buf[0] = '\0';
    for (unsigned i = 0; i < n && i < 30; i++)
        strcat(buf, i ? " x" : "x");
    return buf;
}


START_TEST(test_modules_are_named_and_indexed_in_registry_order)
{
    rp_modules_init();
    ck_assert_uint_gt(rp_nmodules, 0);
    for (size_t i = 0; i < rp_nmodules; i++) {
        ck_assert_ptr_nonnull(rp_modules[i]->name);
        ck_assert_uint_eq(rp_modules[i]->index, i);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(rp_modules[i]->name, rp_modules[j]->name);
    }
}
END_TEST

START_TEST(test_every_command_is_well_formed)
{
    size_t n = 0;
    FOR_EACH_COMMAND(m, cmd)
    {
        const char *mod = rp_modules[m]->name;
        ck_assert_msg(cmd->name[0] != '\0', "%s: a command without a name", mod);
        ck_assert_msg(cmd->set != NULL, "%s: \"%s\" has no setter", mod, cmd->name);
        ck_assert_msg(cmd->min_args <= cmd->max_args, "%s: \"%s\" takes %u to %u arguments", mod,
                      cmd->name, cmd->min_args, cmd->max_args);
        ck_assert_msg(cmd->ctx != 0, "%s: \"%s\" is allowed nowhere", mod, cmd->name);
        ck_assert_msg((cmd->ctx & ~RP_CTX_ANY) == 0, "%s: \"%s\" has unknown contexts 0x%x", mod,
                      cmd->name, cmd->ctx);
        ck_assert_msg((cmd->flags & ~RP_CMD_BLOCK) == 0, "%s: \"%s\" has unknown flags 0x%x", mod,
                      cmd->name, cmd->flags);
        ck_assert_msg(cmd->conf <= RP_CONF_UPS, "%s: \"%s\" has an unknown conf level %u", mod,
                      cmd->name, cmd->conf);
        n++;
    }
    ck_assert_uint_gt(n, 20);
}
END_TEST

START_TEST(test_every_command_has_a_configuration_in_each_of_its_contexts)
{
    /* what the parser can hand a setter, per conf level: NULL anywhere else */
    const unsigned in_http =
        RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION | RP_CTX_SIF | RP_CTX_LIF;
    const unsigned served[] = {
        [RP_CONF_MAIN] = RP_CTX_ANY,
        [RP_CONF_HTTP_MAIN] = in_http | RP_CTX_UPSTREAM,
        [RP_CONF_SRV] = in_http | RP_CTX_UPSTREAM,
        [RP_CONF_LOC] = in_http | RP_CTX_UPSTREAM,
        [RP_CONF_UPS] = RP_CTX_UPSTREAM,
    };
    FOR_EACH_COMMAND(m, cmd)
    {
        ck_assert_msg((cmd->ctx & ~served[cmd->conf]) == 0,
                      "%s: \"%s\" is allowed in contexts 0x%x where its conf level %u has no "
                      "configuration",
                      rp_modules[m]->name, cmd->name, cmd->ctx & ~served[cmd->conf], cmd->conf);
    }
}
END_TEST

START_TEST(test_no_two_commands_share_a_name_in_one_context)
{
    FOR_EACH_COMMAND(m, a)
    {
        FOR_EACH_COMMAND(k, b)
        {
            if (a == b || strcmp(a->name, b->name) != 0)
                continue;
            ck_assert_msg((a->ctx & b->ctx) == 0,
                          "\"%s\" is declared by %s and %s for the same contexts 0x%x", a->name,
                          rp_modules[m]->name, rp_modules[k]->name, a->ctx & b->ctx);
        }
    }
}
END_TEST

START_TEST(test_every_directive_is_refused_outside_its_contexts)
{
    size_t checked = 0;
    FOR_EACH_COMMAND(m, cmd)
    {
        unsigned allowed = contexts_of(cmd->name);
        for (size_t i = 0; i < NCONTEXTS; i++) {
            const context_t *c = &contexts[i];
            if (allowed & c->ctx)
                continue;
            ck_assert_ptr_null(load_in(c, cmd, "x"));
            char want[256];
            if (c->ctx & (RP_CTX_SIF | RP_CTX_LIF)) /* nginx's words inside an if */
                snprintf(want, sizeof(want), "@/rampart.conf:%u: \"%s\" directive is not allowed here",
                         c->line, cmd->name);
            else
                snprintf(want, sizeof(want),
                         "@/rampart.conf:%u: \"%s\": not allowed in the %s context", c->line,
                         cmd->name, c->name);
            ck_assert_str_eq(ut_err, ut_expand(want));
            checked++;
        }
    }
    ck_assert_uint_gt(checked, 0);
}
END_TEST

START_TEST(test_every_directive_is_accepted_in_its_contexts)
{
    FOR_EACH_COMMAND(m, cmd)
    {
        for (size_t i = 0; i < NCONTEXTS; i++) {
            const context_t *c = &contexts[i];
            if (!(cmd->ctx & c->ctx))
                continue;
            rp_cycle_t *cycle = load_in(c, cmd, args_of(cmd->min_args));
            if (cycle) {
                rp_cycle_destroy(cycle);
                continue;
            }
            /* a placeholder value may be refused, but not the directive in this place */
            ck_assert_msg(strstr(ut_err, "not allowed") == NULL &&
                              strstr(ut_err, "unknown directive") == NULL &&
                              strstr(ut_err, "\": takes ") == NULL,
                          "\"%s\" in %s: %s", cmd->name, c->name, ut_err);
        }
    }
}
END_TEST

START_TEST(test_every_directive_refuses_an_argument_too_many)
{
    FOR_EACH_COMMAND(m, cmd)
    {
        if (cmd->max_args == RP_ARGS_ANY)
            continue;
        const context_t *c = first_allowed(cmd);
        ck_assert_ptr_null(load_in(c, cmd, args_of(cmd->max_args + 1u)));
        char want[256], buf[64];
        snprintf(want, sizeof(want), "@/rampart.conf:%u: \"%s\": takes %s, got %u", c->line,
                 cmd->name, rp_conf_arity_text(cmd, buf, sizeof(buf)), cmd->max_args + 1u);
        ck_assert_str_eq(ut_err, ut_expand(want));
    }
}
END_TEST

START_TEST(test_every_directive_refuses_an_argument_too_few)
{
    FOR_EACH_COMMAND(m, cmd)
    {
        if (cmd->min_args == 0)
            continue;
        const context_t *c = first_allowed(cmd);
        ck_assert_ptr_null(load_in(c, cmd, args_of(cmd->min_args - 1u)));
        char want[256], buf[64];
        snprintf(want, sizeof(want), "@/rampart.conf:%u: \"%s\": takes %s, got %u", c->line,
                 cmd->name, rp_conf_arity_text(cmd, buf, sizeof(buf)), cmd->min_args - 1u);
        ck_assert_str_eq(ut_err, ut_expand(want));
    }
}
END_TEST

START_TEST(test_block_directives_need_a_block_and_others_refuse_one)
{
    FOR_EACH_COMMAND(m, cmd)
    {
        const context_t *c = first_allowed(cmd);
        char directive[256], text[1024], want[256];
        int block = (cmd->flags & RP_CMD_BLOCK) != 0;
        snprintf(directive, sizeof(directive), "%s %s%s", cmd->name, args_of(cmd->min_args),
                 block ? ";" : " {\n}");
        snprintf(text, sizeof(text), c->wrap, directive);
        ck_assert_ptr_null(ut_load(text));
        snprintf(want, sizeof(want), "@/rampart.conf:%u: \"%s\": %s", c->line, cmd->name,
                 block ? "missing \"{\": this directive takes a block"
                       : "unexpected \"{\": this directive takes no block (missing \";\"?)");
        ck_assert_str_eq(ut_err, ut_expand(want));
    }
}
END_TEST

START_TEST(test_unknown_directive_is_reported_in_every_context)
{
    for (size_t i = 0; i < NCONTEXTS; i++) {
        char text[1024], want[256];
        snprintf(text, sizeof(text), contexts[i].wrap, "no_such_directive on;");
        ck_assert_ptr_null(ut_load(text));
        snprintf(want, sizeof(want), "@/rampart.conf:%u: unknown directive \"no_such_directive\"",
                 contexts[i].line);
        ck_assert_str_eq(ut_err, ut_expand(want));
    }
}
END_TEST

static Suite *directives_suite(void)
{
    Suite *s = suite_create("directives");
    TCase *tc = tcase_create("tables");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_modules_are_named_and_indexed_in_registry_order);
    tcase_add_test(tc, test_every_command_is_well_formed);
    tcase_add_test(tc, test_every_command_has_a_configuration_in_each_of_its_contexts);
    tcase_add_test(tc, test_no_two_commands_share_a_name_in_one_context);
    suite_add_tcase(s, tc);

    tc = tcase_create("enforced by the parser");
    /* hundreds of configurations loaded, eight contexts each: slow on shared CI cores */
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_every_directive_is_refused_outside_its_contexts);
    tcase_add_test(tc, test_every_directive_is_accepted_in_its_contexts);
    tcase_add_test(tc, test_every_directive_refuses_an_argument_too_many);
    tcase_add_test(tc, test_every_directive_refuses_an_argument_too_few);
    tcase_add_test(tc, test_block_directives_need_a_block_and_others_refuse_one);
    tcase_add_test(tc, test_unknown_directive_is_reported_in_every_context);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(directives_suite());
}
