/*
 * Tokenizer for the nginx configuration grammar. It knows words, quoted strings
 * (single or double, with \" \' \\ \n \r \t escapes; any other backslash pair is
 * kept so "\$" reaches the variable compiler), "${name}" inside words, "#" comments
 * at the start of a token, and the three punctuation tokens ";", "{" and "}".
 * It knows nothing about directives: that is the parser's job.
 */
#ifndef RP_CONF_LEXER_H
#define RP_CONF_LEXER_H

#include <stddef.h>

typedef enum {
    RP_TOK_WORD,
    RP_TOK_SEMI,
    RP_TOK_LBRACE,
    RP_TOK_RBRACE,
    RP_TOK_EOF,
    RP_TOK_ERROR,
} rp_tok_type_t;

typedef struct {
    const char *name; /* file name used in messages */
    const char *text; /* whole file, NUL-terminated */
    size_t len;
    size_t pos;
    unsigned line;
    char *buf; /* the current word, unescaped; owned by the lexer */
    size_t buf_len;
    size_t buf_cap;
    unsigned tok_line;   /* line where the current token started */
    int tok_quoted;      /* the word was quoted */
    const char *error;   /* set with RP_TOK_ERROR */
    char errbuf[128];
} rp_lexer_t;

/* Starts tokenizing text (len bytes); name is only used for messages. */
void rp_lexer_init(rp_lexer_t *lx, const char *name, const char *text, size_t len);

/* Frees the word buffer. */
void rp_lexer_free(rp_lexer_t *lx);

/*
 * Returns the next token. For RP_TOK_WORD the unescaped text is in lx->buf
 * (lx->buf_len bytes, NUL-terminated); for RP_TOK_ERROR lx->error says why and
 * lx->tok_line says where.
 */
rp_tok_type_t rp_lexer_next(rp_lexer_t *lx);

/*
 * Reads a block verbatim (Lua code in a `*_by_lua_block { ... }`): from just after
 * its "{" to the matching "}", counting braces as Lua does (not inside strings,
 * long strings or comments). Sets *start and *len to the code's place in lx->text
 * and *line to the line the code starts on, and moves past the "}". Returns 0, or
 * -1 with lx->error (an unfinished block).
 */
int rp_lexer_raw_block(rp_lexer_t *lx, size_t *start, size_t *len, unsigned *line);

#endif
