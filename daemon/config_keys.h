/*
 * config_keys.h - the key table of sendq.ini (config.c) and the value
 * types its rows name (config_value.c).  Internal to the config library.
 *
 * Owns: one row per key {section, key, type, choices, min, max, allowed,
 * default, flags, offset, doc}; the type of a row names the function that
 * checks and stores a value (config_type.set), the one that says what
 * is allowed (config_type.allowed) and the one that frees it.
 * May call: util.  Pure: the table is data, lookups are loops over it.
 */
#ifndef SENDQ_CONFIG_KEYS_H
#define SENDQ_CONFIG_KEYS_H

#include <stddef.h>

#include "config.h"

enum config_sect {
	CONFIG_SECT_NONE,
	CONFIG_SECT_SENDQ,
	CONFIG_SECT_QUEUE,
	CONFIG_SECT_SMARTHOST,
	CONFIG_SECT_INTAKE,
	CONFIG_SECT_ALIASES, /* [aliases]: free-form names, no table */
};

#define CONFIG_F_REQUIRED 0x1
#define CONFIG_F_REPEAT   0x2 /* may be given on several lines */

struct config_key;

/*
 * One value being set: the row, where it goes and what was written.
 * A type's set() checks value and stores it at field (base is the struct
 * config, or the current struct config_smarthost for a smarthost key);
 * it returns 0, or -1 with why = "what is wrong (allowed: ...)".
 */
struct config_val {
	const struct config_key *k;
	void                    *base;
	void                    *field; /* base + k->offset */
	const char              *value; /* non-empty, no controls */
	size_t                   len;
	const char              *shown;  /* value made printable */
	int                      line;   /* 0: a table default */
	int                      client; /* CONFIG_LOAD_CLIENT given */
	char                     why[512];
	/* The allowed text, made by config_val_ok() when a why needs it
	 * (not for every value: most are valid). */
	const char *ok;
	char        okbuf[128];
};

struct config_type {
	int (*set)(struct config_val *v); /* NULL: a list */
	/* What may be written, into buf; NULL: the row's allowed text. */
	const char *(
	    *allowed)(const struct config_key *k, char *buf, size_t bufsz);
	/* Free what set() stored at field (base as for set); NULL: none. */
	void (*fini)(void *base, void *field);
	/* A list type: one space-separated token of the value (len bytes
	 * at tok, NUL-terminated; shown printable) checked and appended. */
	int (*one)(struct config_val *v, const char *tok, size_t len,
	    const char *shown);
};

/* The allowed text of v's row, for a why (config_key_allowed, made once
 * on first use). */
const char *config_val_ok(struct config_val *v);

/* Check and store v->value with its row's type (set or, for a list type,
 * one for each token).  Returns 0, or -1 with v->why. */
int config_type_set(struct config_val *v);

/* The types (config_value.c), each a parser of its own. */
extern const struct config_type config_t_path, config_t_file, config_t_hostname,
    config_t_host, config_t_enum, config_t_duration, config_t_uint,
    config_t_string, config_t_pin, config_t_credname, config_t_socket,
    config_t_address, config_t_duration_off, config_t_globs, config_t_name,
    config_t_rate, config_t_listen, config_t_size, config_t_networks,
    config_t_sender_rewrite, config_t_accounts;

#define CONFIG_T_PATH           (&config_t_path)         /* absolute path */
#define CONFIG_T_FILE           (&config_t_file)         /* ... readable */
#define CONFIG_T_HOSTNAME       (&config_t_hostname)     /* not an address */
#define CONFIG_T_HOST           (&config_t_host)         /* name or literal */
#define CONFIG_T_ENUM           (&config_t_enum)         /* index of choices */
#define CONFIG_T_DURATION       (&config_t_duration)     /* N[s|m|h|d] */
#define CONFIG_T_UINT           (&config_t_uint)         /* min..max */
#define CONFIG_T_STRING         (&config_t_string)       /* any text */
#define CONFIG_T_PIN            (&config_t_pin)          /* sha256:B64 ... */
#define CONFIG_T_CREDNAME       (&config_t_credname)     /* systemd cred. */
#define CONFIG_T_SOCKET         (&config_t_socket)       /* fits sun_path */
#define CONFIG_T_ADDRESS        (&config_t_address)      /* local@domain */
#define CONFIG_T_DURATION_OFF   (&config_t_duration_off) /* off or dur. */
#define CONFIG_T_GLOBS          (&config_t_globs)        /* char ** list */
#define CONFIG_T_NAME           (&config_t_name)         /* smarthost name */
#define CONFIG_T_RATE           (&config_t_rate)         /* N/s, N/m, N/h */
#define CONFIG_T_LISTEN         (&config_t_listen)       /* intake.listen */
#define CONFIG_T_SIZE           (&config_t_size)         /* N[K|M|G], uint64 */
#define CONFIG_T_NETWORKS       (&config_t_networks)     /* CIDR list */
#define CONFIG_T_SENDER_REWRITE (&config_t_sender_rewrite) /* addr|dom */
#define CONFIG_T_ACCOUNTS       (&config_t_accounts) /* user/group names */

/*
 * choices: an ENUM's names, NULL-ended.  min, max: the range of UINT,
 * DURATION (seconds), SIZE (KiB) and ACCOUNTS (names).  allowed: for
 * messages (types with an allowed() build theirs).  def: the default as
 * text, parsed like a value from the file; NULL for none.  offset: into
 * struct config, or into struct config_smarthost for a smarthost key.
 */
struct config_key {
	enum config_sect          sect;
	const char               *key;
	const struct config_type *type;
	const char *const        *choices;
	unsigned                  min, max;
	const char               *allowed;
	const char               *def;
	int                       flags;
	size_t                    offset;
	const char               *doc;
};

extern const struct config_key config_keys[];
extern const size_t            config_nkeys;

/* The row of key in sect, or NULL; its index in *index when found. */
const struct config_key *
config_key_find(enum config_sect sect, const char *key, size_t *index);
/* The index of a key known to exist (any section); aborts otherwise. */
size_t config_key_index(const char *key);
/* Keys of a section, "a, b, c", into buf. */
const char *config_section_keys(enum config_sect sect, char *buf, size_t bufsz);
/* What a row allows, for messages. */
const char *
config_key_allowed(const struct config_key *k, char *buf, size_t bufsz);
/* "a, b, c" from a NULL-ended list, into buf. */
const char *config_join(char *buf, size_t bufsz, const char *const *names);

#endif
