/*
 * mqlog-tool - the command line of mqlog: create, inspect, produce to,
 * replay, verify and repair a data directory.
 *
 * The tool uses only the public API of <mqlog.h>, so that everything it
 * does an application can do too, and so that it keeps working against a
 * shared library of a later version.
 *
 * Exit status, the same for every command (see INTERFACES.md):
 *
 *     0  success
 *     1  runtime error (a message on stderr, with mqlog_errmsg())
 *     2  usage error (a message and a short usage on stderr)
 *     3  corruption found (verify, recover, dump, consume)
 *
 * Commands that only read (topics, describe, consume, dump, verify) open
 * the directory without MQLOG_OPEN_CREATE, so that a mistyped path is an
 * error instead of a fresh empty directory.  Every handle is closed on every
 * exit path: closing writes the buffered derived index entries, which saves
 * the next opener from catching them up.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mqlog.h"

#define PROGNAME "mqlog-tool"

#define STR_(x) #x
#define STR(x)	STR_(x)
#define TOOL_VERSION             \
	STR(MQLOG_VERSION_MAJOR) \
	"." STR(MQLOG_VERSION_MINOR) "." STR(MQLOG_VERSION_PATCH)

enum {
	EXIT_RUNTIME = 1, /* runtime error */
	EXIT_USAGE = 2,	  /* bad command line */
	EXIT_CORRUPT = 3, /* corruption found */
};

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

struct command;
typedef int (*command_fn)(const struct command *cmd, int argc, char **argv);

/* One subcommand: its name, its entry point and its help. */
struct command {
	const char *name;     /* as typed on the command line */
	command_fn run;	      /* gets argv with argv[0] == name */
	const char *synopsis; /* usage lines, each starting with PROGNAME */
	const char *brief;    /* one line for the command list */
	const char *summary;  /* what it does, for --help */
	const char *help;     /* arguments and options, for --help */
};

static const struct command *find_command(const char *name);

/* ======================================================================== */
/* Messages                                                                 */
/* ======================================================================== */

/* warn - print "mqlog-tool: MESSAGE" on stderr. */
PRINTF_LIKE(1, 2)
static void warn(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROGNAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * lib_detail - the best description of a library error: the thread's
 * message names the file, offset or argument, so prefer it; fall back to the
 * static text when a call failed without setting one.
 */
static const char *lib_detail(const mqlog *db, int rc)
{
	const char *msg = mqlog_errmsg(db);

	if (msg == NULL || msg[0] == '\0' || strcmp(msg, "no error") == 0)
		return mqlog_strerror(rc);
	return msg;
}

/* report - print "mqlog-tool: CONTEXT: LIBRARY MESSAGE" on stderr. */
PRINTF_LIKE(3, 4)
static void report(const mqlog *db, int rc, const char *fmt, ...)
{
	const char *detail = lib_detail(db, rc);
	va_list ap;

	fflush(stdout);
	fputs(PROGNAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", detail);
}

/*
 * report_lib - print "mqlog-tool: LIBRARY MESSAGE" on stderr, for errors
 * whose message already names everything involved (the path, the topic).
 */
static void report_lib(const mqlog *db, int rc)
{
	fflush(stdout);
	fprintf(stderr, PROGNAME ": %s\n", lib_detail(db, rc));
}

/* The exit status for a library error: corruption has its own. */
static int exit_for(int rc)
{
	return rc == MQLOG_ECORRUPT ? EXIT_CORRUPT : EXIT_RUNTIME;
}

static void print_synopsis(const struct command *cmd, FILE *f)
{
	fprintf(f, "usage: %s\n", cmd->synopsis);
}

/*
 * usage_error - print the problem, the command's synopsis and a hint on
 * stderr; returns EXIT_USAGE so that callers can "return usage_error(...)".
 * @cmd may be NULL for errors before a command is known.
 */
PRINTF_LIKE(2, 3)
static int usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROGNAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL) {
		print_synopsis(cmd, stderr);
		fprintf(stderr, "Try '%s %s --help' for more information.\n",
			PROGNAME, cmd->name);
	} else {
		fprintf(stderr,
			"usage: %s COMMAND ARGS... [OPTIONS]\n"
			"Try '%s --help' for the list of commands.\n",
			PROGNAME, PROGNAME);
	}
	return EXIT_USAGE;
}

/*
 * stdout_error - check stdout after output was written; returns 0 when all
 * is well, else prints why and returns EXIT_RUNTIME.
 */
static int stdout_error(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	warn("write to standard output: %s", strerror(errno));
	return EXIT_RUNTIME;
}

/* ======================================================================== */
/* Argument parsing                                                         */
/* ======================================================================== */

#define MAX_POSITIONALS 4

/*
 * State of one command's parse.  Options are parsed with getopt_long in its
 * "-" mode, which hands positionals back in order as option 1: options may
 * then come before, between or after the positionals (as INTERFACES.md
 * writes them), whatever POSIXLY_CORRECT says.
 */
struct args {
	char *pos[MAX_POSITIONALS]; /* positionals, in order */
	int npos;		    /* number of positionals */
	int started;		    /* getopt has been reset for this parse */
};

enum {
	OPT_END = -1,	/* no more options */
	OPT_ERROR = -2, /* usage error, already reported */
	OPT_HELP = -3,	/* --help was printed */
};

/* Long option ids: above any character so they cannot clash with one. */
enum {
	O_PARTITIONS = 256,
	O_SEGMENT_BYTES,
	O_SYNC,
	O_SYNC_INTERVAL,
	O_RETENTION_MS,
	O_RETENTION_BYTES,
	O_MAX_MESSAGES,
	O_FULL_POLICY,
	O_MAX_RECORD_BYTES,
	O_INDEX_INTERVAL,
	O_IF_NOT_EXISTS,
	O_JSON,
	O_KEY_SEP,
	O_PARTITION,
	O_PRINT_OFFSETS,
	O_GROUP,
	O_FROM,
	O_MAX,
	O_IDLE_EXIT,
	O_FORMAT,
	O_TO,
	O_HEARTBEAT_MS,
	O_FORCE,
	O_INTEREST,
	O_MAX_ATTEMPTS,
	O_RETRY_DELAY,
	O_NACK_VALUE,
};

static void print_help(const struct command *cmd, FILE *f)
{
	print_synopsis(cmd, f);
	fprintf(f, "\n%s\n%s", cmd->summary, cmd->help);
}

/*
 * next_option - the next option of the command line, or OPT_END; collects
 * positionals into @a on the way.  Prints --help itself (OPT_HELP) and
 * reports malformed options (OPT_ERROR).
 */
static int next_option(const struct command *cmd, int argc, char **argv,
		       const struct option *longopts, struct args *a)
{
	if (!a->started) {
		optind = 0; /* 0, not 1: makes glibc reinitialise fully */
		opterr = 0;
		a->started = 1;
	}
	for (;;) {
		int c = getopt_long(argc, argv, "-:h", longopts, NULL);

		switch (c) {
		case -1:
			/* Whatever follows "--" is positional. */
			while (optind < argc) {
				if (a->npos == MAX_POSITIONALS)
					goto too_many;
				a->pos[a->npos++] = argv[optind++];
			}
			return OPT_END;
		case 1:
			if (a->npos == MAX_POSITIONALS)
				goto too_many;
			a->pos[a->npos++] = optarg;
			continue;
		case 'h':
			print_help(cmd, stdout);
			return OPT_HELP;
		case ':':
			usage_error(cmd, "option '%s' needs a value",
				    argv[optind - 1]);
			return OPT_ERROR;
		case '?':
			if (optopt > 0 && optopt < 256 &&
			    strncmp(argv[optind - 1], "--", 2) != 0)
				usage_error(cmd, "unknown option '-%c'",
					    optopt);
			else
				usage_error(cmd, "unknown option '%s'",
					    argv[optind - 1]);
			return OPT_ERROR;
		default:
			return c;
		}
	}
too_many:
	usage_error(cmd, "too many arguments");
	return OPT_ERROR;
}

/*
 * parse_u64 - a decimal number in [min, max], optionally with a binary
 * size suffix (K, M, G, T: powers of 1024) when @suffix is set.  Strict: no
 * sign, no blanks, nothing after the number.  Returns 0, or -1 with *why
 * set to a static explanation.
 */
static int parse_u64(const char *s, uint64_t min, uint64_t max, int suffix,
		     uint64_t *out, const char **why)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (s[0] == '-' && s[1] >= '0' && s[1] <= '9') {
		*why = "negative";
		return -1;
	}
	if (s[0] < '0' || s[0] > '9') {
		*why = "not a number";
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE) {
		*why = "out of range";
		return -1;
	}
	if (suffix && *end != '\0' && end[1] == '\0') {
		switch (*end) {
		case 'k':
		case 'K':
			mult = UINT64_C(1) << 10;
			end++;
			break;
		case 'm':
		case 'M':
			mult = UINT64_C(1) << 20;
			end++;
			break;
		case 'g':
		case 'G':
			mult = UINT64_C(1) << 30;
			end++;
			break;
		case 't':
		case 'T':
			mult = UINT64_C(1) << 40;
			end++;
			break;
		default:
			break;
		}
	}
	if (*end != '\0') {
		*why = "not a number";
		return -1;
	}
	if (v > UINT64_MAX / mult) {
		*why = "out of range";
		return -1;
	}
	v *= mult;
	if (v < min || v > max) {
		*why = "out of range";
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * opt_u64 - parse the value of option @opt; on failure print a usage error
 * naming the option and its bounds and return EXIT_USAGE.
 */
static int opt_u64(const struct command *cmd, const char *opt, const char *s,
		   uint64_t min, uint64_t max, int suffix, uint64_t *out)
{
	const char *why;

	if (parse_u64(s, min, max, suffix, out, &why) == 0)
		return 0;
	return usage_error(cmd,
			   "%s: '%s' is %s (want an integer from %" PRIu64
			   " to %" PRIu64 "%s)",
			   opt, s, why, min, max,
			   suffix ? ", with an optional K/M/G/T suffix" : "");
}

/* opt_u32 - opt_u64 for a uint32_t destination. */
static int opt_u32(const struct command *cmd, const char *opt, const char *s,
		   uint64_t min, uint64_t max, int suffix, uint32_t *out)
{
	uint64_t v;
	int rc;

	if (max > UINT32_MAX)
		max = UINT32_MAX;
	rc = opt_u64(cmd, opt, s, min, max, suffix, &v);
	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/*
 * opt_limit - a retention-style limit: a number >= 0, or "unlimited" / "-1"
 * for MQLOG_UNLIMITED (-1 is what Kafka users write).
 */
static int opt_limit(const struct command *cmd, const char *opt, const char *s,
		     int suffix, int64_t *out)
{
	uint64_t v;
	int rc;

	if (strcmp(s, "unlimited") == 0 || strcmp(s, "-1") == 0) {
		*out = MQLOG_UNLIMITED;
		return 0;
	}
	rc = opt_u64(cmd, opt, s, 0, INT64_MAX, suffix, &v);
	if (rc == 0)
		*out = (int64_t)v;
	return rc;
}

static const char *const sync_names[] = { "none", "interval", "always" };
static const char *const full_names[] = { "drop-oldest", "reject", "block" };

/* Index of @s in @names, or -1. */
static int lookup_name(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

static const char *sync_name(int sync)
{
	if (sync >= 0 && sync < 3)
		return sync_names[sync];
	return "default";
}

static const char *full_name(int policy)
{
	if (policy >= 0 && policy < 3)
		return full_names[policy];
	return "unknown";
}

static int opt_sync(const struct command *cmd, const char *s, int *out)
{
	int v = lookup_name(sync_names, 3, s);

	if (v < 0)
		return usage_error(cmd,
				   "--sync: '%s' is not one of none, interval, "
				   "always",
				   s);
	*out = v; /* the enum values are the indexes */
	return 0;
}

/* Where a reader starts: --from of consume, --to of reset-offsets. */
struct from_spec {
	enum {
		FROM_EARLIEST,
		FROM_LATEST,
		FROM_OFFSET,
		FROM_TIME
	} kind;
	uint64_t offset;   /* FROM_OFFSET */
	int64_t timestamp; /* FROM_TIME: ms since the epoch */
};

static int opt_from(const struct command *cmd, const char *opt, const char *s,
		    struct from_spec *out)
{
	const char *why;
	uint64_t v;

	if (strcmp(s, "earliest") == 0) {
		out->kind = FROM_EARLIEST;
		return 0;
	}
	if (strcmp(s, "latest") == 0) {
		out->kind = FROM_LATEST;
		return 0;
	}
	if (s[0] == '@') {
		if (parse_u64(s + 1, 0, INT64_MAX, 0, &v, &why) == 0) {
			out->kind = FROM_TIME;
			out->timestamp = (int64_t)v;
			return 0;
		}
	} else if (parse_u64(s, 0, MQLOG_OFFSET_EARLIEST - 1, 0, &v, &why) ==
		   0) {
		out->kind = FROM_OFFSET;
		out->offset = v;
		return 0;
	}
	return usage_error(cmd,
			   "%s: '%s' is not earliest, latest, an offset or "
			   "@EPOCH_MS",
			   opt, s);
}

/* check_topic_name - a usage error unless @name is a valid topic name. */
static int check_topic_name(const struct command *cmd, const char *name)
{
	if (mqlog_topic_name_valid(name))
		return 0;
	return usage_error(cmd,
			   "'%s' is not a valid topic name (1 to %d characters "
			   "of A-Z a-z 0-9 . _ -, not '.' or '..')",
			   name, MQLOG_TOPIC_NAME_MAX);
}

/* DIR GROUP TOPIC, the positionals of reset-offsets and delete-group. */
static int check_group_topic(const struct command *cmd, const struct args *a)
{
	if (a->npos != 3)
		return usage_error(cmd, a->npos < 3 ? "missing DIR, GROUP or "
						      "TOPIC" :
						      "too many arguments");
	if (!mqlog_group_name_valid(a->pos[1]))
		return usage_error(cmd,
				   "'%s' is not a valid group name (1 to %d "
				   "characters of A-Z a-z 0-9 . _ -, not '.' "
				   "or '..')",
				   a->pos[1], MQLOG_TOPIC_NAME_MAX);
	return check_topic_name(cmd, a->pos[2]);
}

/* ======================================================================== */
/* Output helpers                                                           */
/* ======================================================================== */

/*
 * utf8_seq - the length (1..4) of the well-formed UTF-8 sequence at @s, or
 * 0 when the bytes there are not one: overlong forms, surrogates and code
 * points above U+10FFFF are rejected, as RFC 3629 asks.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/*
 * json_string - write @len bytes as a JSON string.  Quotes, backslashes and
 * control characters are escaped; well-formed UTF-8 is copied as is; a byte
 * that is not part of well-formed UTF-8 becomes \u00XX (the byte read as
 * Latin-1), so that the output is always valid JSON.  Runs of plain bytes
 * are written with one fwrite: consume --format json spends its time here.
 */
static void json_string(FILE *f, const void *data, size_t len)
{
	const unsigned char *s = data;
	size_t i = 0, run = 0;

	fputc('"', f);
	while (i < len) {
		unsigned char c = s[i];
		const char *esc = NULL;
		size_t n;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			n = utf8_seq(s + i, len - i);
			if (n > 0) {
				i += n;
				continue;
			}
		}
		fwrite(s + run, 1, i - run, f);
		switch (c) {
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\f':
			esc = "\\f";
			break;
		default:
			break;
		}
		if (esc != NULL)
			fputs(esc, f);
		else
			fprintf(f, "\\u%04x", c);
		i++;
		run = i;
	}
	fwrite(s + run, 1, i - run, f);
	fputc('"', f);
}

/* json_bytes - a byte run as a JSON string, or null for a null run. */
static void json_bytes(FILE *f, mqlog_bytes b)
{
	if (b.data == NULL)
		fputs("null", f);
	else
		json_string(f, b.data, b.len);
}

static void json_cstr(FILE *f, const char *s)
{
	if (s == NULL)
		fputs("null", f);
	else
		json_string(f, s, strlen(s));
}

/*
 * c_escape - a byte run for human eyes: quoted, with C escapes for quotes,
 * backslashes and every byte outside printable ASCII (\xHH), so that a dump
 * shows exactly which bytes are stored.  A null run prints as null.
 */
static void c_escape(FILE *f, mqlog_bytes b)
{
	const unsigned char *s = b.data;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = s[i];

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c >= 0x20 && c < 0x7f)
				fputc(c, f);
			else
				fprintf(f, "\\x%02x", c);
		}
	}
	fputc('"', f);
}

/* format_time - @ms since the epoch as ISO 8601 UTC with milliseconds. */
static void format_time(int64_t ms, char *buf, size_t size)
{
	int64_t sec = ms / 1000, rem = ms % 1000;
	struct tm tm;
	time_t t;
	size_t n;

	if (rem < 0) {
		rem += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (gmtime_r(&t, &tm) == NULL ||
	    (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "?");
		return;
	}
	snprintf(buf + n, size - n, ".%03dZ", (int)rem);
}

/* The number of decimal digits of @v, for column widths. */
static int u64_width(uint64_t v)
{
	int w = 1;

	while (v >= 10) {
		v /= 10;
		w++;
	}
	return w;
}

/* A limit for humans: the number, or "unlimited". */
static void print_limit(FILE *f, const char *label, int64_t v)
{
	if (v < 0)
		fprintf(f, "%-22s unlimited\n", label);
	else
		fprintf(f, "%-22s %" PRId64 "\n", label, v);
}

static int64_t now_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ======================================================================== */
/* Opening                                                                  */
/* ======================================================================== */

/*
 * open_db - open @dir with @flags (MQLOG_OPEN_*), reporting failure.
 * Returns 0 or the library's code.
 */
static int open_db(const char *dir, unsigned flags, mqlog **db)
{
	mqlog_options opts;
	int rc;

	mqlog_options_init(&opts);
	opts.flags = flags;
	rc = mqlog_open(dir, &opts, db);
	if (rc != 0)
		report_lib(NULL, rc); /* the message names the path */
	return rc;
}

/* open_topic - open topic @name of @db, reporting failure. */
static int open_topic(mqlog *db, const char *name, mqlog_topic **t)
{
	int rc = mqlog_topic_open(db, name, t);

	if (rc == MQLOG_ENOENT)
		report_lib(db, rc); /* "topic 'x' not found" */
	else if (rc != 0)
		report(db, rc, "open topic '%s'", name);
	return rc;
}

/* check_partition - 0 when @p exists in @t, else a message and -1. */
static int check_partition(mqlog_topic *t, uint32_t p)
{
	uint32_t n = mqlog_topic_partitions(t);

	if (p < n)
		return 0;
	warn("topic '%s' has no partition %" PRIu32 " (it has %" PRIu32
	     " partition%s: 0 to %" PRIu32 ")",
	     mqlog_topic_name(t), p, n, n == 1 ? "" : "s", n - 1);
	return -1;
}

/* ======================================================================== */
/* create                                                                   */
/* ======================================================================== */

static int cmd_create(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "partitions", required_argument, NULL, O_PARTITIONS },
		{ "segment-bytes", required_argument, NULL, O_SEGMENT_BYTES },
		{ "sync", required_argument, NULL, O_SYNC },
		{ "sync-interval-ms", required_argument, NULL,
		  O_SYNC_INTERVAL },
		{ "retention-ms", required_argument, NULL, O_RETENTION_MS },
		{ "retention-bytes", required_argument, NULL,
		  O_RETENTION_BYTES },
		{ "max-messages", required_argument, NULL, O_MAX_MESSAGES },
		{ "full-policy", required_argument, NULL, O_FULL_POLICY },
		{ "max-record-bytes", required_argument, NULL,
		  O_MAX_RECORD_BYTES },
		{ "index-interval-bytes", required_argument, NULL,
		  O_INDEX_INTERVAL },
		{ "if-not-exists", no_argument, NULL, O_IF_NOT_EXISTS },
		{ "interest", no_argument, NULL, O_INTEREST },
		{ "max-attempts", required_argument, NULL, O_MAX_ATTEMPTS },
		{ "retry-delay-ms", required_argument, NULL, O_RETRY_DELAY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	mqlog_topic_config cfg;
	int if_not_exists = 0;
	mqlog *db = NULL;
	int c, rc;

	mqlog_topic_config_init(&cfg);
	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		rc = 0;
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_PARTITIONS:
			rc = opt_u32(cmd, "--partitions", optarg, 1,
				     MQLOG_MAX_PARTITIONS, 0, &cfg.partitions);
			break;
		case O_SEGMENT_BYTES:
			rc = opt_u64(cmd, "--segment-bytes", optarg, 4096,
				     INT64_MAX, 1, &cfg.segment_bytes);
			break;
		case O_SYNC:
			rc = opt_sync(cmd, optarg, &cfg.sync);
			break;
		case O_SYNC_INTERVAL:
			rc = opt_u32(cmd, "--sync-interval-ms", optarg, 1,
				     UINT32_MAX, 0, &cfg.sync_interval_ms);
			break;
		case O_RETENTION_MS:
			rc = opt_limit(cmd, "--retention-ms", optarg, 0,
				       &cfg.retention_ms);
			break;
		case O_RETENTION_BYTES:
			rc = opt_limit(cmd, "--retention-bytes", optarg, 1,
				       &cfg.retention_bytes);
			break;
		case O_MAX_MESSAGES:
			rc = opt_limit(cmd, "--max-messages", optarg, 0,
				       &cfg.max_messages);
			break;
		case O_FULL_POLICY:
			cfg.full_policy = lookup_name(full_names, 3, optarg);
			if (cfg.full_policy < 0)
				rc = usage_error(cmd,
						 "--full-policy: '%s' is not "
						 "one of drop-oldest, reject, "
						 "block",
						 optarg);
			break;
		case O_MAX_RECORD_BYTES:
			rc = opt_u32(cmd, "--max-record-bytes", optarg, 1,
				     UINT32_MAX, 1, &cfg.max_record_bytes);
			break;
		case O_INDEX_INTERVAL:
			rc = opt_u32(cmd, "--index-interval-bytes", optarg, 1,
				     UINT32_MAX, 1, &cfg.index_interval_bytes);
			break;
		case O_IF_NOT_EXISTS:
			if_not_exists = 1;
			break;
		case O_INTEREST:
			cfg.interest = 1;
			break;
		case O_MAX_ATTEMPTS:
			rc = opt_u32(cmd, "--max-attempts", optarg, 1, 1000, 0,
				     &cfg.max_attempts);
			break;
		case O_RETRY_DELAY:
			rc = opt_u32(cmd, "--retry-delay-ms", optarg, 0,
				     86400000u, 0, &cfg.retry_delay_ms);
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
		if (rc != 0)
			return rc;
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;

	if (open_db(a.pos[0], MQLOG_OPEN_CREATE, &db) != 0)
		return EXIT_RUNTIME;
	rc = mqlog_topic_create(db, a.pos[1], &cfg);
	if (rc == MQLOG_EEXIST && if_not_exists) {
		rc = 0;
	} else if (rc == MQLOG_EINVAL) {
		/*
		 * The name was checked above, so the library refused a
		 * combination of options: that is the user's command line.
		 */
		report(db, rc, "create topic '%s'", a.pos[1]);
		mqlog_close(db);
		return EXIT_USAGE;
	} else if (rc == MQLOG_EEXIST) {
		report_lib(db, rc); /* "topic 'x' exists" */
	} else if (rc != 0) {
		report(db, rc, "create topic '%s'", a.pos[1]);
	} else {
		printf("created topic %s with %" PRIu32 " partition%s\n",
		       a.pos[1], cfg.partitions,
		       cfg.partitions == 1 ? "" : "s");
	}
	mqlog_close(db);
	if (rc != 0)
		return EXIT_RUNTIME;
	return stdout_error();
}

/* ======================================================================== */
/* topics                                                                   */
/* ======================================================================== */

static int cmd_topics(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	char **names = NULL;
	size_t count = 0;
	mqlog *db = NULL;
	int json = 0;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			json = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos != 1)
		return usage_error(cmd, a.npos < 1 ? "missing DIR" :
						     "too many arguments");

	if (open_db(a.pos[0], MQLOG_OPEN_RDONLY, &db) != 0)
		return EXIT_RUNTIME;
	rc = mqlog_topic_list(db, &names, &count);
	if (rc != 0) {
		report(db, rc, "list topics of %s", a.pos[0]);
		goto out;
	}
	if (!json) {
		for (size_t i = 0; i < count; i++)
			printf("%s\n", names[i]);
	} else {
		fputs("{\"topics\":[", stdout);
		for (size_t i = 0; i < count; i++) {
			mqlog_topic *t = NULL;

			/* The partition count lives with the open topic. */
			if (open_topic(db, names[i], &t) != 0)
				goto out;
			printf("%s{\"name\":", i ? "," : "");
			json_cstr(stdout, names[i]);
			printf(",\"partitions\":%" PRIu32 "}",
			       mqlog_topic_partitions(t));
			mqlog_topic_close(t);
		}
		fputs("]}\n", stdout);
	}
	ret = stdout_error();
out:
	mqlog_list_free(names, count);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* describe                                                                 */
/* ======================================================================== */

static void describe_json(mqlog_topic *t, const mqlog_topic_config *cfg,
			  const mqlog_partition_info *info,
			  const mqlog_interest_info *ii, uint32_t n)
{
	fputs("{\"topic\":", stdout);
	json_cstr(stdout, mqlog_topic_name(t));
	printf(",\"config\":{\"partitions\":%" PRIu32
	       ",\"segment_bytes\":%" PRIu64 ",\"sync\":\"%s\""
	       ",\"sync_interval_ms\":%" PRIu32 ",\"retention_ms\":%" PRId64
	       ",\"retention_bytes\":%" PRId64 ",\"max_messages\":%" PRId64
	       ",\"full_policy\":\"%s\",\"max_record_bytes\":%" PRIu32
	       ",\"index_interval_bytes\":%" PRIu32 ",\"interest\":%s}",
	       cfg->partitions, cfg->segment_bytes, sync_name(cfg->sync),
	       cfg->sync_interval_ms, cfg->retention_ms, cfg->retention_bytes,
	       cfg->max_messages, full_name(cfg->full_policy),
	       cfg->max_record_bytes, cfg->index_interval_bytes,
	       cfg->interest ? "true" : "false");
	fputs(",\"partitions\":[", stdout);
	for (uint32_t p = 0; p < n; p++) {
		const mqlog_partition_info *i = &info[p];

		printf("%s{\"partition\":%" PRIu32 ",\"start_offset\":%" PRIu64
		       ",\"end_offset\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"segments\":%" PRIu64 ",\"bytes\":%" PRIu64
		       ",\"durable_offset\":%" PRIu64
		       ",\"active_base\":%" PRIu64 ",\"usage\":%.4f"
		       ",\"failed\":%s",
		       p ? "," : "", p, i->start_offset, i->end_offset,
		       i->end_offset - i->start_offset, i->segments, i->bytes,
		       i->durable_offset, i->active_base, i->usage,
		       i->failed ? "true" : "false");
		/* The interest floor: which group holds the log start. */
		printf(",\"interest_groups\":%zu,\"interest_floor\":%" PRIu64
		       ",\"interest_group\":",
		       ii[p].groups, ii[p].floor);
		if (ii[p].groups)
			json_cstr(stdout, ii[p].group);
		else
			fputs("null", stdout);
		putchar('}');
	}
	fputs("]", stdout); /* the caller closes the document */
}

static void describe_text(mqlog_topic *t, const mqlog_topic_config *cfg,
			  const mqlog_partition_info *info,
			  const mqlog_interest_info *ii, uint32_t n)
{
	static const char *const head[] = {
		"PARTITION", "START", "END",	 "RECORDS",
		"SEGMENTS",  "BYTES", "DURABLE",
	};
	enum {
		NCOL = 7
	};
	int w[NCOL];
	uint64_t tot_records = 0, tot_segments = 0, tot_bytes = 0;

	printf("%-22s %s\n", "topic", mqlog_topic_name(t));
	printf("%-22s %" PRIu32 "\n", "partitions", cfg->partitions);
	printf("%-22s %" PRIu64 "\n", "segment-bytes", cfg->segment_bytes);
	if (cfg->sync == MQLOG_SYNC_INTERVAL)
		printf("%-22s interval (every %" PRIu32 " ms)\n", "sync",
		       cfg->sync_interval_ms);
	else
		printf("%-22s %s\n", "sync", sync_name(cfg->sync));
	print_limit(stdout, "retention-ms", cfg->retention_ms);
	print_limit(stdout, "retention-bytes", cfg->retention_bytes);
	print_limit(stdout, "max-messages", cfg->max_messages);
	printf("%-22s %s\n", "full-policy", full_name(cfg->full_policy));
	printf("%-22s %" PRIu32 "\n", "max-record-bytes",
	       cfg->max_record_bytes);
	printf("%-22s %" PRIu32 "\n", "index-interval-bytes",
	       cfg->index_interval_bytes);
	printf("%-22s %s\n", "interest",
	       cfg->interest ? "on (freed once every group committed)" : "off");

	/* Right-aligned numeric columns: widest of header and values. */
	for (int c = 0; c < NCOL; c++)
		w[c] = (int)strlen(head[c]);
	for (uint32_t p = 0; p < n; p++) {
		const mqlog_partition_info *i = &info[p];
		uint64_t v[NCOL] = {
			p,
			i->start_offset,
			i->end_offset,
			i->end_offset - i->start_offset,
			i->segments,
			i->bytes,
			i->durable_offset,
		};

		for (int c = 0; c < NCOL; c++)
			if (u64_width(v[c]) > w[c])
				w[c] = u64_width(v[c]);
		tot_records += v[3];
		tot_segments += v[4];
		tot_bytes += v[5];
	}
	putchar('\n');
	for (int c = 0; c < NCOL; c++)
		printf("%*s  ", w[c], head[c]);
	puts(" USAGE  FAILED");
	for (uint32_t p = 0; p < n; p++) {
		const mqlog_partition_info *i = &info[p];
		char usage[16] = "     -";

		/* Usage against the record and byte limits, the higher. */
		if (cfg->max_messages > 0 || cfg->retention_bytes > 0)
			snprintf(usage, sizeof usage, "%5.1f%%",
				 i->usage * 100.0);
		printf("%*" PRIu32 "  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64
		       "  %*" PRIu64 "  %*" PRIu64 "  %*" PRIu64 "  %s  %s\n",
		       w[0], p, w[1], i->start_offset, w[2], i->end_offset,
		       w[3], i->end_offset - i->start_offset, w[4], i->segments,
		       w[5], i->bytes, w[6], i->durable_offset, usage,
		       i->failed ? "yes" : "no");
	}
	printf("\ntotal: %" PRIu64 " record%s in %" PRIu64
	       " segment%s, %" PRIu64 " bytes\n",
	       tot_records, tot_records == 1 ? "" : "s", tot_segments,
	       tot_segments == 1 ? "" : "s", tot_bytes);
	if (!cfg->interest)
		return;
	/* Which group holds each partition's log start. */
	printf("\n%9s  %12s  %6s  %s\n", "PARTITION", "FLOOR", "GROUPS",
	       "HELD BY");
	for (uint32_t p = 0; p < n; p++)
		printf("%9" PRIu32 "  %12" PRIu64 "  %6zu  %s\n", p,
		       ii[p].floor, ii[p].groups,
		       ii[p].groups ? ii[p].group :
				      "(no group: nothing is freed)");
}

/* Records in topic @name (0 when it does not exist); -1 on an error. */
static int64_t topic_records(mqlog *db, const char *name)
{
	mqlog_partition_info pi;
	mqlog_topic *t = NULL;
	int64_t total = 0;

	if (mqlog_topic_open(db, name, &t) != 0)
		return 0;
	for (uint32_t p = 0; p < mqlog_topic_partitions(t); p++) {
		if (mqlog_partition_stat(t, p, &pi) != 0) {
			total = -1;
			break;
		}
		total += (int64_t)(pi.end_offset - pi.start_offset);
	}
	mqlog_topic_close(t);
	return total;
}

/* The retry settings and the records in TOPIC.retry and TOPIC.dlq. */
static void describe_retries(mqlog *db, const char *topic,
			     const mqlog_topic_config *cfg, int json)
{
	char name[MQLOG_TOPIC_NAME_MAX + 16];
	int64_t retry, dead;

	snprintf(name, sizeof name, "%s.retry", topic);
	retry = topic_records(db, name);
	snprintf(name, sizeof name, "%s.dlq", topic);
	dead = topic_records(db, name);
	if (json) {
		printf(",\"retries\":{\"max_attempts\":%" PRIu32
		       ",\"retry_delay_ms\":%" PRIu32
		       ",\"retry_records\":%" PRId64
		       ",\"dead_letters\":%" PRId64 "}",
		       cfg->max_attempts, cfg->retry_delay_ms, retry, dead);
		return;
	}
	printf("\n%-22s %" PRIu32 "\n", "max-attempts", cfg->max_attempts);
	printf("%-22s %" PRIu32 "\n", "retry-delay-ms", cfg->retry_delay_ms);
	printf("%-22s %" PRId64 " (%s.retry)\n", "retry-records", retry, topic);
	printf("%-22s %" PRId64 " (%s.dlq)\n", "dead-letters", dead, topic);
}

static int cmd_describe(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	mqlog_partition_info *info = NULL;
	mqlog_interest_info *ii = NULL;
	mqlog_topic_config cfg;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	int json = 0;
	uint32_t n;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			json = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;

	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, a.pos[1], &t) != 0)
		goto out;
	mqlog_topic_config_get(t, &cfg);
	n = mqlog_topic_partitions(t);
	info = calloc(n ? n : 1, sizeof(*info));
	ii = calloc(n ? n : 1, sizeof(*ii));
	if (info == NULL || ii == NULL) {
		warn("out of memory");
		goto out;
	}
	/* Gather first, print after: the table's widths need every row. */
	for (uint32_t p = 0; p < n; p++) {
		rc = mqlog_partition_stat(t, p, &info[p]);
		if (rc == 0)
			rc = mqlog_partition_interest(t, p, &ii[p]);
		if (rc != 0) {
			report(db, rc, "%s/%" PRIu32, a.pos[1], p);
			ret = exit_for(rc);
			goto out;
		}
	}
	if (json)
		describe_json(t, &cfg, info, ii, n);
	else
		describe_text(t, &cfg, info, ii, n);
	describe_retries(db, a.pos[1], &cfg, json);
	if (json)
		fputs("}\n", stdout);
	ret = stdout_error();
out:
	free(ii);
	free(info);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* produce                                                                  */
/* ======================================================================== */

/*
 * Reading stdin.  The tool does its own line splitting over read(2) rather
 * than getline(3) because it must know whether input is ready *without*
 * blocking: stdio may hold buffered lines that poll(2) on the descriptor
 * cannot see.  Here the buffer is ours, so "a complete line is buffered, or
 * the descriptor is readable" is an exact answer.  Lines may be of any
 * length: the buffer grows to hold the longest one.
 */
struct line_reader {
	int fd;		/* descriptor read from */
	char *buf;	/* unread input is buf[start, end) */
	size_t cap;	/* bytes allocated at buf */
	size_t start;	/* first byte not yet handed out */
	size_t end;	/* one past the last byte read */
	size_t scanned; /* buf[start, start + scanned) holds no newline */
	int eof;	/* read(2) returned 0 */
	uint64_t line;	/* number of lines handed out so far */
};

#define LINE_READ_CHUNK (64u << 10)

/*
 * lr_next - the next line, without its newline, in *line / *len (valid
 * until the next call).  A last line without a newline is a line too.
 * Returns 1 with a line, 0 at the end of input, or -errno.
 */
static int lr_next(struct line_reader *lr, const char **line, size_t *len)
{
	for (;;) {
		size_t avail = lr->end - lr->start;
		char *nl = NULL;
		ssize_t n;

		if (avail > lr->scanned)
			nl = memchr(lr->buf + lr->start + lr->scanned, '\n',
				    avail - lr->scanned);
		if (nl != NULL || (lr->eof && avail > 0)) {
			*line = lr->buf + lr->start;
			*len = nl ? (size_t)(nl - *line) : avail;
			lr->start += *len + (nl ? 1 : 0);
			lr->scanned = 0;
			lr->line++;
			return 1;
		}
		lr->scanned = avail;
		if (lr->eof)
			return 0;
		/* Make room: move the partial line down, then grow. */
		if (lr->start > 0) {
			memmove(lr->buf, lr->buf + lr->start, avail);
			lr->start = 0;
			lr->end = avail;
		}
		if (lr->cap - lr->end < LINE_READ_CHUNK / 2) {
			size_t ncap = lr->cap ? lr->cap * 2 : LINE_READ_CHUNK;
			char *nbuf;

			if (ncap < lr->cap)
				return -ENOMEM;
			nbuf = realloc(lr->buf, ncap);
			if (nbuf == NULL)
				return -ENOMEM;
			lr->buf = nbuf;
			lr->cap = ncap;
		}
		n = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			lr->eof = 1;
		else
			lr->end += (size_t)n;
	}
}

/*
 * lr_ready - 1 when lr_next() would return without blocking: a complete
 * line is buffered, input has ended, or the descriptor has data (or an
 * error or hang-up, which read(2) will then report).
 */
static int lr_ready(struct line_reader *lr)
{
	size_t avail = lr->end - lr->start;
	struct pollfd pfd = { .fd = lr->fd, .events = POLLIN };

	if (lr->eof)
		return 1;
	if (avail > lr->scanned) {
		if (memchr(lr->buf + lr->start + lr->scanned, '\n',
			   avail - lr->scanned) != NULL)
			return 1;
		lr->scanned = avail;
	}
	return poll(&pfd, 1, 0) != 0; /* an error: let read(2) say it */
}

/*
 * Producing goes through the library's producer (mqlog_produce_async()),
 * which batches per partition, puts a keyed line on the partition of its
 * key and null-key lines on the sticky partition (one partition per batch,
 * moving between batches), and reports each line's outcome to a delivery
 * callback.  The tool keeps one outcome slot per pending line, in input
 * order.  At each checkpoint (when stdin has no complete line ready, so
 * that an interactive producer or a slow pipe sees its records written and
 * its offsets printed at once; every PENDING_MAX lines; at the end) it
 * flushes the producer, which returns once every pending line has its
 * outcome and is durable under the sync policy in force, then prints the
 * offsets of the lines in input order up to the first one that failed.
 *
 * The contract (INTERFACES.md) is that produce stops at the first record
 * that cannot be written and that every record before it is written and
 * acknowledged.  A line after the failed one may have been written by a
 * batch of another partition appended before the failure was known, but
 * it is not acknowledged: only lines before the failed one are printed.
 */
#define PENDING_MAX	  (64u << 10) /* lines between checkpoints */
#define PENDING_MAX_BYTES (64u << 20) /* key + value bytes between them */

/*
 * grow - make room for @need elements of @elem bytes at @p (capacity *cap,
 * doubled as needed).  Returns the (possibly moved) array, or NULL with @p
 * untouched when memory runs out.
 */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need == 0)
		need = 1; /* so that a first call allocates: NULL means failure
			   */
	if (need <= *cap && p != NULL)
		return p;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return NULL;
		ncap *= 2;
	}
	np = realloc(p, ncap * elem);
	if (np != NULL)
		*cap = ncap;
	return np;
}

/* The outcome of one pending line, filled by the delivery callback. */
struct line_outcome {
	uint64_t offset;    /* its offset, when rc == 0 */
	uint32_t partition; /* its partition */
	int rc;		    /* 0 or why it is not in the log */
	int done;	    /* the callback came */
};

struct produce_state {
	struct line_outcome *out; /* PENDING_MAX slots: line first_line + i */
	size_t n;		  /* lines pending in this round */
	size_t bytes;		  /* their key and value bytes */
	uint64_t first_line;	  /* input line number of slot 0 */
	int print_offsets;	  /* --print-offsets */
	/* The first failed line of the round (lowest slot), from callbacks. */
	size_t fail_slot;    /* its slot, SIZE_MAX when none */
	char fail_msg[1024]; /* its message */
	int out_errno;	     /* errno of a failed write of offsets */
};

/*
 * on_line_delivered - the delivery callback, in the producer's thread.  It
 * touches only the slot of its line and the failure fields; the main thread
 * reads them after mqlog_producer_flush(), which returns only once every
 * callback of the lines before it has returned.
 */
static void on_line_delivered(void *arg, const mqlog_delivery *d)
{
	struct produce_state *ps = arg;
	size_t i = (size_t)(uintptr_t)d->opaque;
	struct line_outcome *o = &ps->out[i];

	o->partition = d->partition;
	o->offset = d->offset;
	o->rc = d->rc;
	o->done = 1;
	if (d->rc != 0 && i < ps->fail_slot) {
		ps->fail_slot = i;
		snprintf(ps->fail_msg, sizeof(ps->fail_msg), "%s",
			 d->errmsg ? d->errmsg : mqlog_strerror(d->rc));
	}
}

/*
 * checkpoint - flush the producer, print the offsets of the round's lines
 * in input order, and start a new round.  Returns 0, or -1 when a line
 * failed: *fail_line gets its input line number and ps->fail_msg says why.
 */
static int checkpoint(struct produce_state *ps, mqlog_producer *p,
		      uint64_t *fail_line)
{
	int rc = mqlog_producer_flush(p);

	if (rc != 0 && ps->fail_slot == SIZE_MAX) {
		/* Every failure of a line comes with its callback first. */
		ps->fail_slot = ps->n > 0 ? ps->n - 1 : 0;
		snprintf(ps->fail_msg, sizeof(ps->fail_msg), "%s",
			 lib_detail(NULL, rc));
	}
	for (size_t i = 0; i < ps->n && i < ps->fail_slot; i++) {
		const struct line_outcome *o = &ps->out[i];

		/* flush returned: every line before the failure is in. */
		assert(o->done && o->rc == 0);
		if (ps->print_offsets)
			printf("%" PRIu32 " %" PRIu64 "\n", o->partition,
			       o->offset);
	}
	if ((fflush(stdout) != 0 || ferror(stdout)) && ps->out_errno == 0)
		ps->out_errno = errno ? errno : EIO;
	if (ps->fail_slot != SIZE_MAX) {
		*fail_line = ps->first_line + ps->fail_slot;
		return -1;
	}
	ps->first_line += ps->n;
	ps->n = 0;
	ps->bytes = 0;
	return 0;
}

/* parse_key_sep - one byte, or one of the escapes \t \n \\ \0-free. */
static int parse_key_sep(const char *s, char *out)
{
	if (s[0] != '\0' && s[1] == '\0') {
		*out = s[0];
		return 0;
	}
	if (s[0] == '\\' && s[1] != '\0' && s[2] == '\0') {
		switch (s[1]) {
		case 't':
			*out = '\t';
			return 0;
		case '\\':
			*out = '\\';
			return 0;
		default:
			break;
		}
	}
	return -1;
}

static int cmd_produce(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key-sep", required_argument, NULL, O_KEY_SEP },
		{ "partition", required_argument, NULL, O_PARTITION },
		{ "sync", required_argument, NULL, O_SYNC },
		{ "print-offsets", no_argument, NULL, O_PRINT_OFFSETS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	struct line_reader lr = { .fd = STDIN_FILENO };
	struct produce_state ps;
	mqlog_producer_options po;
	mqlog_producer *prod = NULL;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	int has_sep = 0, has_partition = 0;
	uint32_t partition = 0;
	uint64_t fail_line = 0;
	char sep = 0;
	int sync = MQLOG_SYNC_DEFAULT;
	int c, rc, ret = EXIT_RUNTIME;

	memset(&ps, 0, sizeof(ps));
	ps.fail_slot = SIZE_MAX;
	ps.first_line = 1;
	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		rc = 0;
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_KEY_SEP:
			if (parse_key_sep(optarg, &sep) != 0)
				return usage_error(cmd,
						   "--key-sep: '%s' is not a "
						   "single character",
						   optarg);
			has_sep = 1;
			break;
		case O_PARTITION:
			rc = opt_u32(cmd, "--partition", optarg, 0,
				     MQLOG_MAX_PARTITIONS - 1, 0, &partition);
			has_partition = 1;
			break;
		case O_SYNC:
			rc = opt_sync(cmd, optarg, &sync);
			break;
		case O_PRINT_OFFSETS:
			ps.print_offsets = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
		if (rc != 0)
			return rc;
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;

	/* No CREATE: producing to a mistyped directory must fail. */
	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, a.pos[1], &t) != 0)
		goto out;
	if (has_partition && check_partition(t, partition) != 0)
		goto out;
	ps.out = calloc(PENDING_MAX, sizeof(*ps.out));
	if (ps.out == NULL) {
		warn("out of memory");
		goto out;
	}
	mqlog_producer_options_init(&po);
	po.sync = sync;
	po.on_delivery = on_line_delivered;
	po.delivery_arg = &ps;
	rc = mqlog_producer_open(t, &po, &prod);
	if (rc != 0) {
		report_lib(db, rc);
		goto out;
	}

	for (;;) {
		const char *line = NULL;
		size_t len = 0;
		mqlog_msg m;

		if (ps.n > 0 && !lr_ready(&lr)) {
			if (checkpoint(&ps, prod, &fail_line) != 0)
				goto failed;
		}
		/*
		 * Acknowledgements that cannot be delivered (the reader of
		 * --print-offsets went away) end the run: the records so far
		 * are written, but nobody would learn about the next ones.
		 */
		if (ps.out_errno != 0)
			goto output_error;
		rc = lr_next(&lr, &line, &len);
		if (rc < 0) {
			/* What was read before the error is still written. */
			if (ps.n > 0 && checkpoint(&ps, prod, &fail_line) != 0)
				goto failed;
			warn("read standard input after line %" PRIu64 ": %s",
			     lr.line, strerror(-rc));
			goto out;
		}
		if (rc == 0)
			break;

		memset(&m, 0, sizeof(m));
		m.timestamp = MQLOG_TIMESTAMP_NOW;
		m.value.data = line;
		m.value.len = len;
		if (has_sep) {
			const char *s = memchr(line, sep, len);

			if (s != NULL) {
				m.key.data = line;
				m.key.len = (size_t)(s - line);
				m.value.data = s + 1;
				m.value.len = len - m.key.len - 1;
			}
		}
		ps.out[ps.n].done = 0;
		rc = mqlog_produce_async(prod, &m,
					 has_partition ? partition :
							 MQLOG_PARTITION_AUTO,
					 (void *)(uintptr_t)ps.n);
		if (rc != 0) {
			/*
			 * This line was refused (too big, the producer
			 * failed): settle every line before it first, so
			 * that an earlier failure is the one reported.
			 */
			char msg[sizeof(ps.fail_msg)];

			snprintf(msg, sizeof(msg), "%s", lib_detail(db, rc));
			if (checkpoint(&ps, prod, &fail_line) != 0)
				goto failed;
			fail_line = lr.line;
			memcpy(ps.fail_msg, msg, sizeof(msg));
			goto failed;
		}
		ps.n++;
		ps.bytes += len;
		if (ps.n == PENDING_MAX || ps.bytes >= PENDING_MAX_BYTES) {
			if (checkpoint(&ps, prod, &fail_line) != 0)
				goto failed;
		}
	}
	if (ps.n > 0 && checkpoint(&ps, prod, &fail_line) != 0)
		goto failed;
	if (ps.out_errno != 0)
		goto output_error;
	rc = mqlog_producer_close(prod);
	if (rc != 0) {
		report_lib(db, rc);
		goto out;
	}
	ret = stdout_error();
	goto out;

output_error:
	warn("write to standard output after line %" PRIu64 ": %s", lr.line,
	     strerror(ps.out_errno));
	goto out;

failed:
	fflush(stdout);
	warn("line %" PRIu64 ": %s", fail_line, ps.fail_msg);
out:
	/* Close delivers every pending outcome before ps goes away. */
	mqlog_producer_free(prod);
	free(ps.out);
	free(lr.buf);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* consume                                                                  */
/* ======================================================================== */

enum format {
	FORMAT_VALUE,
	FORMAT_KV,
	FORMAT_JSON
};

/* Records read from one partition before moving to the next. */
#define CONSUME_CHUNK 256

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void print_record(enum format fmt, const char *topic, uint32_t p,
			 const mqlog_record *rec)
{
	switch (fmt) {
	case FORMAT_VALUE:
		fwrite(rec->value.data ? rec->value.data : "", 1,
		       rec->value.len, stdout);
		break;
	case FORMAT_KV:
		if (rec->key.data != NULL)
			fwrite(rec->key.data, 1, rec->key.len, stdout);
		putchar('\t');
		fwrite(rec->value.data ? rec->value.data : "", 1,
		       rec->value.len, stdout);
		break;
	case FORMAT_JSON:
		fputs("{\"topic\":", stdout);
		json_cstr(stdout, topic);
		printf(",\"partition\":%" PRIu32 ",\"offset\":%" PRIu64
		       ",\"timestamp\":%" PRId64 ",\"key\":",
		       p, rec->offset, rec->timestamp);
		json_bytes(stdout, rec->key);
		fputs(",\"value\":", stdout);
		json_bytes(stdout, rec->value);
		putchar('}');
		break;
	}
	putchar('\n');
}

/*
 * output_closed - 1 when stdout is a pipe or socket whose reader has gone.
 * A follower that has nothing to print would otherwise learn it only at its
 * next write, which may be hours away (GNU tail -f makes the same check).
 */
static int output_closed(void)
{
	struct pollfd pfd = { .fd = STDOUT_FILENO, .events = 0 };

	if (poll(&pfd, 1, 0) != 1)
		return 0;
	return (pfd.revents & (POLLERR | POLLHUP)) != 0;
}

/* position_reader - put @r where --from asks.  0, or reported error. */
static int position_reader(mqlog *db, mqlog_topic *t, mqlog_reader *r,
			   uint32_t p, const struct from_spec *from)
{
	const char *name = mqlog_topic_name(t);
	mqlog_partition_info info;
	int rc = 0;

	switch (from->kind) {
	case FROM_EARLIEST:
		rc = mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST);
		break;
	case FROM_LATEST:
		rc = mqlog_reader_seek(r, MQLOG_OFFSET_LATEST);
		break;
	case FROM_TIME:
		rc = mqlog_reader_seek_time(r, from->timestamp);
		break;
	case FROM_OFFSET:
		rc = mqlog_reader_seek(r, from->offset);
		if (rc != MQLOG_ERANGE ||
		    mqlog_partition_stat(t, p, &info) != 0)
			break;
		if (from->offset < info.start_offset) {
			/*
			 * Retention removed the records asked for: start at
			 * the oldest that is left, as Kafka's "earliest"
			 * reset does, and say so.
			 */
			warn("%s/%" PRIu32 ": offset %" PRIu64
			     " was removed by retention; starting at %" PRIu64,
			     name, p, from->offset, info.start_offset);
			rc = mqlog_reader_seek(r, MQLOG_OFFSET_EARLIEST);
		} else {
			warn("%s/%" PRIu32 ": offset %" PRIu64
			     " is past the end of the partition (%" PRIu64 ")",
			     name, p, from->offset, info.end_offset);
			return rc;
		}
		break;
	}
	if (rc != 0)
		report(db, rc, "%s/%" PRIu32 ": seek", name, p);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* consume --group                                                          */
/* ------------------------------------------------------------------------ */

/* A busy group consumer commits at least this often (ms). */
#define GROUP_COMMIT_MS 100

/* What the rebalance callback of consume --group needs. */
struct group_run {
	const struct from_spec *from; /* --from, for partitions never committed
				       */
	const char *topic;	      /* for messages */
	int no_commit;		      /* output failed: commit nothing more */
};

/*
 * The rebalance callback.  REVOKED: everything printed so far has been
 * flushed (the loop flushes before every poll), so commit it before the
 * partitions go to another member.  ASSIGNED: a partition the group never
 * committed starts where --from says.
 */
static void on_group_rebalance(void *arg, mqlog_consumer *c, int event,
			       const uint32_t *parts, size_t n)
{
	struct group_run *g = arg;
	uint64_t off;
	int rc;

	if (event == MQLOG_REBALANCE_REVOKED) {
		if (!g->no_commit && (rc = mqlog_consumer_commit(c)) != 0 &&
		    rc != MQLOG_ESTALE)
			report(NULL, rc, "%s: commit before release", g->topic);
		return;
	}
	if (event != MQLOG_REBALANCE_ASSIGNED ||
	    (g->from->kind != FROM_OFFSET && g->from->kind != FROM_TIME))
		return;
	for (size_t i = 0; i < n; i++) {
		if (mqlog_consumer_committed(c, parts[i], &off) != MQLOG_ENOENT)
			continue;
		if (g->from->kind == FROM_TIME)
			rc = mqlog_consumer_seek_time(c, parts[i],
						      g->from->timestamp);
		else
			rc = mqlog_consumer_seek(c, parts[i], g->from->offset);
		if (rc == MQLOG_ERANGE)
			warn("%s/%" PRIu32 ": offset %" PRIu64
			     " is out of range; starting at the earliest",
			     g->topic, parts[i], g->from->offset);
		else if (rc != 0)
			report(NULL, rc, "%s/%" PRIu32 ": seek", g->topic,
			       parts[i]);
	}
}

/*
 * consume_group - consume @topic as a member of @group: print what the
 * group assigns us, flush, then commit (manual commit mode, so that a
 * commit never covers a record that did not reach stdout).  Returns the
 * exit status.
 */
/* consume --nack-value: the value whose records are nacked, or NULL. */
static const char *nack_value;

static int is_nack_value(const mqlog_record *rec)
{
	return nack_value && rec->value.data &&
	       rec->value.len == strlen(nack_value) &&
	       memcmp(rec->value.data, nack_value, rec->value.len) == 0;
}

static int consume_group(const char *dir, const char *topic, const char *group,
			 const struct from_spec *from, enum format fmt,
			 int has_max, uint64_t max, int has_idle, uint64_t idle,
			 uint32_t heartbeat_ms)
{
	struct group_run g = { .from = from, .topic = topic };
	struct sigaction sa, old_int, old_term;
	mqlog_consumer_options opts;
	mqlog_consumer *c = NULL;
	mqlog_record *recs = NULL;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	uint64_t printed = 0;
	int64_t last_record, last_commit;
	int rc, ret = EXIT_RUNTIME;

	if (open_db(dir, 0, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, topic, &t) != 0)
		goto out;
	recs = calloc(CONSUME_CHUNK, sizeof(*recs));
	if (recs == NULL) {
		warn("out of memory");
		goto out;
	}
	mqlog_consumer_options_init(&opts);
	opts.group = group;
	opts.commit_mode = MQLOG_COMMIT_MANUAL;
	opts.heartbeat_ms = heartbeat_ms;
	opts.lease_ms = heartbeat_ms * 10 > 2000 ? heartbeat_ms * 10 : 2000;
	opts.reset_offset = from->kind == FROM_LATEST ? MQLOG_OFFSET_LATEST :
							MQLOG_OFFSET_EARLIEST;
	opts.on_rebalance = on_group_rebalance;
	opts.rebalance_arg = &g;
	rc = mqlog_consumer_open(t, &opts, &c);
	if (rc != 0) {
		report_lib(db, rc);
		ret = exit_for(rc);
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	last_record = last_commit = now_mono_ms();
	while (!stop_requested && !(has_max && printed >= max)) {
		size_t want = CONSUME_CHUNK, got = 0;
		int64_t now;
		int slice = 250;

		if (has_max && max - printed < want)
			want = (size_t)(max - printed);
		now = now_mono_ms();
		if (has_idle) {
			int64_t left = last_record + (int64_t)idle - now;

			if (left <= 0)
				break;
			if (left < slice)
				slice = (int)left;
		}
		/* The poll may release partitions (committing in the
		 * callback): what was printed must be out first. */
		if (fflush(stdout) != 0)
			goto output_error;
		rc = mqlog_consumer_poll(c, recs, want, slice, &got);
		if (rc != 0) {
			report_lib(db, rc);
			ret = exit_for(rc);
			goto restore;
		}
		for (size_t k = 0; k < got; k++) {
			if (is_nack_value(&recs[k])) {
				rc = mqlog_consumer_nack(
					c, &recs[k], MQLOG_NACK_DEFAULT_DELAY,
					"mqlog-tool consume --nack-value");
				if (rc != 0) {
					report_lib(db, rc);
					ret = exit_for(rc);
					goto restore;
				}
				continue;
			}
			print_record(fmt, topic, recs[k].partition, &recs[k]);
		}
		printed += got;
		if (got == 0) {
			if (output_closed())
				break;
			continue;
		}
		last_record = now_mono_ms();
		/* Commit once the records are out: when caught up, and
		 * every GROUP_COMMIT_MS while busy. */
		if (got < want ||
		    last_record - last_commit >= GROUP_COMMIT_MS) {
			if (fflush(stdout) != 0 || ferror(stdout))
				goto output_error;
			rc = mqlog_consumer_commit(c);
			if (rc != 0 && rc != MQLOG_ESTALE) {
				report_lib(db, rc);
				ret = exit_for(rc);
				goto restore;
			}
			last_commit = last_record;
		}
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		goto output_error;
	rc = mqlog_consumer_commit(c);
	if (rc != 0 && rc != MQLOG_ESTALE) {
		report_lib(db, rc);
		ret = exit_for(rc);
		goto restore;
	}
	ret = 0;
	goto restore;

output_error:
	/* What did not reach stdout stays uncommitted: the group gives it
	 * to the next member. */
	g.no_commit = 1;
	if (errno == EPIPE) {
		ret = 0;
	} else {
		warn("write to standard output: %s", strerror(errno));
		ret = EXIT_RUNTIME;
	}
restore:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	g.no_commit = 1; /* close reports REVOKED: commit nothing more */
	mqlog_consumer_close(c);
	free(recs);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

/* One partition being consumed. */
struct cpart {
	mqlog_reader *r;    /* its reader */
	uint32_t partition; /* its number */
};

static int cmd_consume(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, O_GROUP },
		{ "partition", required_argument, NULL, O_PARTITION },
		{ "from", required_argument, NULL, O_FROM },
		{ "max", required_argument, NULL, O_MAX },
		{ "idle-exit", required_argument, NULL, O_IDLE_EXIT },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "heartbeat-ms", required_argument, NULL, O_HEARTBEAT_MS },
		{ "nack-value", required_argument, NULL, O_NACK_VALUE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const format_names[] = { "value", "kv", "json" };
	struct args a = { 0 };
	struct from_spec from = { .kind = FROM_EARLIEST };
	struct sigaction sa, old_int, old_term;
	uint32_t heartbeat_ms = 1000;
	int has_heartbeat = 0;
	mqlog_record *recs = NULL;
	struct cpart *parts = NULL;
	const char *group = NULL;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	enum format fmt = FORMAT_VALUE;
	int has_partition = 0, has_max = 0, has_idle = 0;
	uint32_t partition = 0, nparts = 0;
	uint64_t max = 0, idle = 0, printed = 0;
	int64_t last_record;
	uint32_t turn = 0;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		rc = 0;
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_GROUP:
			if (optarg[0] == '\0')
				return usage_error(
					cmd, "--group: the name is empty");
			group = optarg;
			break;
		case O_PARTITION:
			rc = opt_u32(cmd, "--partition", optarg, 0,
				     MQLOG_MAX_PARTITIONS - 1, 0, &partition);
			has_partition = 1;
			break;
		case O_FROM:
			rc = opt_from(cmd, "--from", optarg, &from);
			break;
		case O_MAX:
			rc = opt_u64(cmd, "--max", optarg, 0, UINT64_MAX, 0,
				     &max);
			has_max = 1;
			break;
		case O_IDLE_EXIT:
			rc = opt_u64(cmd, "--idle-exit", optarg, 0, INT32_MAX,
				     0, &idle);
			has_idle = 1;
			break;
		case O_FORMAT: {
			int f = lookup_name(format_names, 3, optarg);

			if (f < 0)
				return usage_error(cmd,
						   "--format: '%s' is not one "
						   "of value, kv, json",
						   optarg);
			fmt = (enum format)f;
			break;
		}
		case O_HEARTBEAT_MS:
			rc = opt_u32(cmd, "--heartbeat-ms", optarg, 1, 600000,
				     0, &heartbeat_ms);
			has_heartbeat = 1;
			break;
		case O_NACK_VALUE:
			nack_value = optarg;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
		if (rc != 0)
			return rc;
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;
	if (group != NULL) {
		if (!mqlog_group_name_valid(group))
			return usage_error(
				cmd,
				"--group: '%s' is not a valid group "
				"name (1 to %d characters of A-Z a-z "
				"0-9 . _ -, not '.' or '..')",
				group, MQLOG_TOPIC_NAME_MAX);
		if (has_partition)
			return usage_error(cmd, "--partition and --group "
						"exclude each other: the group "
						"assigns the partitions");
		return consume_group(a.pos[0], a.pos[1], group, &from, fmt,
				     has_max, max, has_idle, idle,
				     heartbeat_ms);
	}
	if (has_heartbeat)
		return usage_error(cmd, "--heartbeat-ms needs --group");
	if (nack_value)
		return usage_error(cmd, "--nack-value needs --group");

	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, a.pos[1], &t) != 0)
		goto out;
	if (has_partition && check_partition(t, partition) != 0)
		goto out;
	nparts = has_partition ? 1 : mqlog_topic_partitions(t);
	parts = calloc(nparts, sizeof(*parts));
	recs = calloc(CONSUME_CHUNK, sizeof(*recs));
	if (parts == NULL || recs == NULL) {
		warn("out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < nparts; i++) {
		uint32_t p = has_partition ? partition : i;

		parts[i].partition = p;
		rc = mqlog_reader_open(t, p, &parts[i].r);
		if (rc != 0) {
			report(db, rc, "%s/%" PRIu32 ": open reader", a.pos[1],
			       p);
			ret = exit_for(rc);
			goto out;
		}
		rc = position_reader(db, t, parts[i].r, p, &from);
		if (rc != 0) {
			ret = exit_for(rc);
			goto out;
		}
	}

	/*
	 * Following forever ends with SIGINT or SIGTERM: the handler only
	 * sets a flag, and the waits below are short enough (at most 250
	 * ms) for the loop to notice it and shut down cleanly.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART; /* no EINTR in the middle of stdio writes */
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	last_record = now_mono_ms();
	while (!stop_requested && !(has_max && printed >= max)) {
		int any = 0;
		int64_t now;
		int slice;

		/* Fair interleaving: up to a chunk from each partition. */
		for (uint32_t i = 0; i < nparts; i++) {
			size_t want = CONSUME_CHUNK, got = 0;

			if (has_max && max - printed < want)
				want = (size_t)(max - printed);
			if (want == 0)
				break;
			rc = mqlog_reader_read(parts[i].r, recs, want, &got);
			if (rc == MQLOG_ERANGE) {
				/* Retention overtook us: skip to what is left.
				 */
				warn("%s/%" PRIu32
				     ": records at offset %" PRIu64
				     " were removed by retention; skipping "
				     "ahead",
				     a.pos[1], parts[i].partition,
				     mqlog_reader_position(parts[i].r));
				rc = mqlog_reader_seek(parts[i].r,
						       MQLOG_OFFSET_EARLIEST);
				if (rc == 0) {
					any = 1;
					continue;
				}
			}
			if (rc < 0) {
				report(db, rc, "%s/%" PRIu32 ": read", a.pos[1],
				       parts[i].partition);
				ret = exit_for(rc);
				goto restore;
			}
			for (size_t k = 0; k < got; k++)
				print_record(fmt, a.pos[1], parts[i].partition,
					     &recs[k]);
			printed += got;
			if (got > 0)
				any = 1;
			if (ferror(stdout))
				goto output_error;
		}
		if (any) {
			last_record = now_mono_ms();
			continue;
		}

		/* Caught up everywhere: show what we have, then wait. */
		if (fflush(stdout) != 0)
			goto output_error;
		if (output_closed())
			break;
		now = now_mono_ms();
		/*
		 * One partition: wait on it alone.  Several: wait on each in
		 * turn for a short slice, re-reading them all in between,
		 * so that a record anywhere is seen within one slice.
		 */
		slice = nparts > 1 ? 10 : 250;
		if (has_idle) {
			int64_t left = last_record + (int64_t)idle - now;

			if (left <= 0)
				break;
			if (left < slice)
				slice = (int)left;
		}
		rc = mqlog_reader_wait(parts[turn].r, slice);
		if (rc != 0 && rc != MQLOG_ETIMEDOUT) {
			report(db, rc, "%s/%" PRIu32 ": wait", a.pos[1],
			       parts[turn].partition);
			ret = exit_for(rc);
			goto restore;
		}
		turn = (turn + 1) % nparts;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		goto output_error;
	ret = 0;
	goto restore;

output_error:
	/*
	 * A reader that went away (consume | head) is a normal end for a
	 * tool that may follow forever; anything else is an error.
	 */
	if (errno == EPIPE) {
		ret = 0;
	} else {
		warn("write to standard output: %s", strerror(errno));
		ret = EXIT_RUNTIME;
	}
restore:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	for (uint32_t i = 0; parts != NULL && i < nparts; i++)
		mqlog_reader_close(parts[i].r);
	free(parts);
	free(recs);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* dump                                                                     */
/* ======================================================================== */

struct dump_ctx {
	int json;	  /* --json */
	int opened;	  /* JSON: the document's opening is printed */
	uint64_t batches; /* batches printed */
	uint64_t records; /* records printed in the current batch */
	char *last_file;  /* file of the previous batch (text mode) */
	mqlog_header hdr_stack[16]; /* headers of small records */
};

static void dump_open_json(struct dump_ctx *d)
{
	if (!d->opened) {
		fputs("{\"batches\":[", stdout);
		d->opened = 1;
	}
}

static int dump_on_batch(void *arg, const mqlog_batch_info *b)
{
	struct dump_ctx *d = arg;
	char t1[64], t2[64];

	if (d->json) {
		dump_open_json(d);
		if (d->batches > 0)
			fputs("]},", stdout);
		fputs("\n{\"file\":", stdout);
		json_cstr(stdout, b->file);
		printf(",\"position\":%" PRIu64 ",\"length\":%" PRIu32
		       ",\"base_offset\":%" PRIu64 ",\"record_count\":%" PRIu32
		       ",\"first_timestamp\":%" PRId64
		       ",\"max_timestamp\":%" PRId64 ",\"flags\":%u"
		       ",\"producer_id\":%" PRIu64 ",\"base_sequence\":%" PRIu32
		       ",\"header_checksum\":\"%016" PRIx64 "\""
		       ",\"body_checksum\":\"%016" PRIx64 "\",\"records\":[",
		       b->position, b->length, b->base_offset, b->record_count,
		       b->first_timestamp, b->max_timestamp, (unsigned)b->flags,
		       b->producer_id, b->base_sequence, b->header_checksum,
		       b->body_checksum);
	} else {
		if (b->file != NULL &&
		    (d->last_file == NULL || strcmp(d->last_file, b->file))) {
			free(d->last_file);
			d->last_file = strdup(b->file);
			printf("%sfile %s\n", d->batches ? "\n" : "", b->file);
		}
		format_time(b->first_timestamp, t1, sizeof(t1));
		format_time(b->max_timestamp, t2, sizeof(t2));
		printf("batch at byte %" PRIu64 ": length %" PRIu32
		       ", offsets %" PRIu64 "..%" PRIu64 " (%" PRIu32
		       " record%s)\n"
		       "  first_timestamp %" PRId64 " (%s)"
		       "  max_timestamp %" PRId64 " (%s)\n"
		       "  flags 0x%04x  producer_id %" PRIu64
		       "  base_sequence %" PRIu32 "\n"
		       "  header_checksum %016" PRIx64
		       "  body_checksum %016" PRIx64 "\n",
		       b->position, b->length, b->base_offset,
		       b->base_offset + b->record_count -
			       (b->record_count ? 1 : 0),
		       b->record_count, b->record_count == 1 ? "" : "s",
		       b->first_timestamp, t1, b->max_timestamp, t2,
		       (unsigned)b->flags, b->producer_id, b->base_sequence,
		       b->header_checksum, b->body_checksum);
	}
	d->batches++;
	d->records = 0;
	return ferror(stdout) ? -EIO : 0;
}

static int dump_on_record(void *arg, const mqlog_batch_info *b,
			  const mqlog_record *rec)
{
	struct dump_ctx *d = arg;
	mqlog_header *hdrs = d->hdr_stack;
	int n = 0;

	(void)b;
	if (rec->header_count > 0) {
		size_t want = rec->header_count;

		if (want > sizeof(d->hdr_stack) / sizeof(d->hdr_stack[0])) {
			hdrs = calloc(want, sizeof(*hdrs));
			if (hdrs == NULL)
				return MQLOG_ENOMEM;
		}
		n = mqlog_record_headers(rec, hdrs, want);
		if (n < 0)
			goto out;
	}
	if (d->json) {
		printf("%s{\"offset\":%" PRIu64 ",\"timestamp\":%" PRId64
		       ",\"key\":",
		       d->records ? "," : "", rec->offset, rec->timestamp);
		json_bytes(stdout, rec->key);
		fputs(",\"value\":", stdout);
		json_bytes(stdout, rec->value);
		fputs(",\"headers\":[", stdout);
		for (int i = 0; i < n; i++) {
			fputs(i ? ",{\"key\":" : "{\"key\":", stdout);
			json_bytes(stdout, hdrs[i].key);
			fputs(",\"value\":", stdout);
			json_bytes(stdout, hdrs[i].value);
			putchar('}');
		}
		fputs("]}", stdout);
	} else {
		printf("  record %" PRIu64 "  timestamp %" PRId64 "  key ",
		       rec->offset, rec->timestamp);
		c_escape(stdout, rec->key);
		fputs("  value ", stdout);
		c_escape(stdout, rec->value);
		printf("  headers %" PRIu32 "\n", rec->header_count);
		for (int i = 0; i < n; i++) {
			fputs("    header ", stdout);
			c_escape(stdout, hdrs[i].key);
			fputs(" = ", stdout);
			c_escape(stdout, hdrs[i].value);
			putchar('\n');
		}
	}
	d->records++;
	n = ferror(stdout) ? -EIO : 0;
out:
	if (hdrs != d->hdr_stack)
		free(hdrs);
	return n < 0 ? n : 0;
}

static int cmd_dump(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const mqlog_scan_ops ops = {
		.on_batch = dump_on_batch,
		.on_record = dump_on_record,
	};
	struct args a = { 0 };
	struct dump_ctx d;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	uint32_t partition = 0;
	const char *what;
	char where[512];
	struct stat st;
	int c, rc, ret = EXIT_RUNTIME;

	memset(&d, 0, sizeof(d));
	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			d.json = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos != 1 && a.npos != 3)
		return usage_error(cmd, "want DIR TOPIC PARTITION, or a "
					"SEGMENT_FILE");
	if (a.npos == 1 && stat(a.pos[0], &st) == 0 && S_ISDIR(st.st_mode))
		return usage_error(cmd,
				   "'%s' is a directory: give DIR TOPIC "
				   "PARTITION, or a segment file",
				   a.pos[0]);
	if (a.npos == 3) {
		if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
			return rc;
		if ((rc = opt_u32(cmd, "PARTITION", a.pos[2], 0,
				  MQLOG_MAX_PARTITIONS - 1, 0, &partition)))
			return rc;
	}

	if (a.npos == 1) {
		what = a.pos[0];
		rc = mqlog_scan_file(a.pos[0], &ops, &d);
	} else {
		snprintf(where, sizeof(where), "%s/%" PRIu32, a.pos[1],
			 partition);
		what = where;
		if (open_db(a.pos[0], MQLOG_OPEN_RDONLY, &db) != 0)
			return EXIT_RUNTIME;
		if (open_topic(db, a.pos[1], &t) != 0)
			goto out;
		if (check_partition(t, partition) != 0)
			goto out;
		rc = mqlog_scan_partition(t, partition, &ops, &d);
	}

	/*
	 * Close the JSON document even after corruption: what was valid is
	 * printed, and the error is part of the document as well as on
	 * stderr.  Other errors (a missing file) print no document unless
	 * batches were already out.
	 */
	if (d.json && (rc == 0 || rc == MQLOG_ECORRUPT || d.opened)) {
		dump_open_json(&d);
		if (d.batches > 0)
			fputs("]}", stdout);
		fputs("\n],\"error\":", stdout);
		json_cstr(stdout, rc == 0 ? NULL : lib_detail(db, rc));
		fputs("}\n", stdout);
	}
	if (rc == 0) {
		ret = stdout_error();
	} else if (rc == -EIO && ferror(stdout)) {
		ret = stdout_error();
	} else {
		if (a.npos == 1)
			report_lib(db, rc); /* the message names the file */
		else
			report(db, rc, "%s", what);
		ret = exit_for(rc);
	}
out:
	free(d.last_file);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* verify                                                                   */
/* ======================================================================== */

/* One problem found by mqlog_verify(), copied for the JSON output. */
struct problem {
	char *topic;	    /* topic, or NULL */
	uint32_t partition; /* partition */
	char *file;	    /* file, or NULL */
	uint64_t position;  /* byte position in file */
	char *what;	    /* description */
};

struct verify_ctx {
	int json;	      /* collect instead of printing */
	struct problem *list; /* collected problems */
	size_t n, cap;	      /* entries at / allocated at list */
	int oom;	      /* a problem could not be recorded */
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void verify_problem(void *arg, const char *topic, uint32_t partition,
			   const char *file, uint64_t position,
			   const char *what)
{
	struct verify_ctx *v = arg;
	struct problem *p;

	if (!v->json) {
		fflush(stdout);
		fputs(PROGNAME ": verify: ", stderr);
		if (topic != NULL)
			fprintf(stderr, "%s/%" PRIu32 ": ", topic, partition);
		if (file != NULL)
			fprintf(stderr, "%s at byte %" PRIu64 ": ", file,
				position);
		fprintf(stderr, "%s\n", what ? what : "problem");
		return;
	}
	p = grow(v->list, &v->cap, v->n + 1, sizeof(*p));
	if (p == NULL) {
		v->oom = 1;
		return;
	}
	v->list = p;
	p = &v->list[v->n++];
	p->topic = dup_or_null(topic);
	p->partition = partition;
	p->file = dup_or_null(file);
	p->position = position;
	p->what = dup_or_null(what);
}

static int cmd_verify(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	struct verify_ctx v;
	mqlog_verify_stats st;
	const char *topic = NULL;
	mqlog *db = NULL;
	int c, rc, ret = EXIT_RUNTIME;
	int ok;

	memset(&v, 0, sizeof(v));
	memset(&st, 0, sizeof(st));
	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			v.json = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos < 1 || a.npos > 2)
		return usage_error(cmd, a.npos < 1 ? "missing DIR" :
						     "too many arguments");
	if (a.npos == 2) {
		topic = a.pos[1];
		if ((rc = check_topic_name(cmd, topic)) != 0)
			return rc;
	}

	/* A damaged index refuses the open: that is corruption found too,
	 * and --json still prints its one document. */
	rc = open_db(a.pos[0], MQLOG_OPEN_RDONLY, &db);
	if (rc == MQLOG_ECORRUPT && v.json) {
		char file[4200];

		snprintf(file, sizeof file, "%s/meta/data.mdb", a.pos[0]);
		fputs("{\"ok\":false,\"topics\":0,\"partitions\":0,"
		      "\"segments\":0,\"batches\":0,\"records\":0,"
		      "\"bytes\":0,\"index_entries\":0,\"problems\":["
		      "\n{\"topic\":null,\"partition\":null,\"file\":",
		      stdout);
		json_cstr(stdout, file);
		fputs(",\"position\":null,\"what\":", stdout);
		json_cstr(stdout, mqlog_errmsg(NULL));
		fputs("}]}\n", stdout);
		rc = stdout_error();
		return rc ? rc : EXIT_CORRUPT;
	}
	if (rc != 0)
		return exit_for(rc);
	rc = mqlog_verify(db, topic, verify_problem, &v, &st);
	if (rc != 0 && rc != MQLOG_ECORRUPT) {
		if (rc == MQLOG_ENOENT && topic != NULL)
			report_lib(db, rc); /* names the topic */
		else
			report(db, rc, "verify %s", a.pos[0]);
		goto out;
	}
	ok = rc == 0 && st.problems == 0;
	if (v.json) {
		printf("{\"ok\":%s,\"topics\":%" PRIu64
		       ",\"partitions\":%" PRIu64 ",\"segments\":%" PRIu64
		       ",\"batches\":%" PRIu64 ",\"records\":%" PRIu64
		       ",\"bytes\":%" PRIu64 ",\"index_entries\":%" PRIu64
		       ",\"problems\":[",
		       ok ? "true" : "false", st.topics, st.partitions,
		       st.segments, st.batches, st.records, st.bytes,
		       st.index_entries);
		for (size_t i = 0; i < v.n; i++) {
			const struct problem *p = &v.list[i];

			fputs(i ? ",\n{\"topic\":" : "\n{\"topic\":", stdout);
			json_cstr(stdout, p->topic);
			printf(",\"partition\":%" PRIu32 ",\"file\":",
			       p->partition);
			json_cstr(stdout, p->file);
			printf(",\"position\":%" PRIu64 ",\"what\":",
			       p->position);
			json_cstr(stdout, p->what);
			putchar('}');
		}
		fputs("]}\n", stdout);
		if (v.oom)
			warn("out of memory: some problems are missing from "
			     "the list");
	} else {
		printf("%-14s %" PRIu64 "\n%-14s %" PRIu64 "\n%-14s %" PRIu64
		       "\n%-14s %" PRIu64 "\n%-14s %" PRIu64 "\n%-14s %" PRIu64
		       "\n%-14s %" PRIu64 "\n",
		       "topics", st.topics, "partitions", st.partitions,
		       "segments", st.segments, "batches", st.batches,
		       "records", st.records, "bytes", st.bytes,
		       "index entries", st.index_entries);
		if (ok)
			puts("result         ok");
		else
			printf("result         %" PRIu64 " problem%s found\n",
			       st.problems, st.problems == 1 ? "" : "s");
	}
	ret = stdout_error();
	if (ret == 0 && !ok) {
		warn("verify %s: %" PRIu64 " problem%s found", a.pos[0],
		     st.problems, st.problems == 1 ? "" : "s");
		ret = EXIT_CORRUPT;
	}
out:
	for (size_t i = 0; i < v.n; i++) {
		free(v.list[i].topic);
		free(v.list[i].file);
		free(v.list[i].what);
	}
	free(v.list);
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* recover                                                                  */
/* ======================================================================== */

static int cmd_recover(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	mqlog_recover_stats st;
	const char *topic = NULL;
	mqlog *db = NULL;
	int c, rc, ret;

	memset(&st, 0, sizeof(st));
	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos < 1 || a.npos > 2)
		return usage_error(cmd, a.npos < 1 ? "missing DIR" :
						     "too many arguments");
	if (a.npos == 2) {
		topic = a.pos[1];
		if ((rc = check_topic_name(cmd, topic)) != 0)
			return rc;
	}

	/* No CREATE: there is nothing to recover in a new directory.  A
	 * damaged index refuses the open (the message says what to do). */
	rc = open_db(a.pos[0], 0, &db);
	if (rc != 0)
		return exit_for(rc);
	rc = mqlog_recover(db, topic, &st);
	if (rc == 0 || rc == MQLOG_ECORRUPT)
		printf("recovered %" PRIu64 " partition%s: removed %" PRIu64
		       " torn-tail byte%s, rewrote %" PRIu64 " index entr%s\n",
		       st.partitions, st.partitions == 1 ? "" : "s",
		       st.truncated_bytes, st.truncated_bytes == 1 ? "" : "s",
		       st.index_entries, st.index_entries == 1 ? "y" : "ies");
	if ((rc == 0 || rc == MQLOG_ECORRUPT) && st.offsets_clamped)
		printf("moved %" PRIu64 " committed group offset%s past the "
		       "log end back to it (the log tail they counted was "
		       "lost)\n",
		       st.offsets_clamped, st.offsets_clamped == 1 ? "" : "s");
	ret = stdout_error();
	if (rc != 0) {
		if (rc == MQLOG_ECORRUPT)
			report(db, rc,
			       "recover %s: corruption in sealed data was left "
			       "in place",
			       a.pos[0]);
		else
			report(db, rc, "recover %s", a.pos[0]);
		ret = exit_for(rc);
	}
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* groups, reset-offsets                                                    */
/* ======================================================================== */

static const char *const strategy_names[] = { "range", "round-robin",
					      "sticky" };

static const char *strategy_name(int s)
{
	return s >= 0 && s < 3 ? strategy_names[s] : "unknown";
}

static void groups_json(const mqlog_group_info *gs, size_t n)
{
	fputs("{\"groups\":[", stdout);
	for (size_t i = 0; i < n; i++) {
		const mqlog_group_info *g = &gs[i];

		fputs(i ? ",{\"group\":" : "{\"group\":", stdout);
		json_cstr(stdout, g->group);
		fputs(",\"topic\":", stdout);
		json_cstr(stdout, g->topic);
		printf(",\"generation\":%" PRIu64 ",\"strategy\":\"%s\""
		       ",\"lag\":%" PRIu64 ",\"live_members\":%zu"
		       ",\"members\":[",
		       g->generation, strategy_name(g->strategy), g->lag,
		       g->live_members);
		for (size_t k = 0; k < g->member_count; k++) {
			const mqlog_group_member_info *m = &g->members[k];

			printf("%s{\"id\":\"%016" PRIx64 "\",\"pid\":%" PRId32
			       ",\"alive\":%s,\"lease_left_ms\":%" PRId64
			       ",\"heartbeat_age_ms\":%" PRId64
			       ",\"generation\":%" PRIu64
			       ",\"partitions\":%" PRIu32 "}",
			       k ? "," : "", m->member_id, m->pid,
			       m->alive ? "true" : "false", m->lease_left_ms,
			       m->heartbeat_age_ms, m->generation, m->owned);
		}
		fputs("],\"partitions\":[", stdout);
		for (size_t k = 0; k < g->partition_count; k++) {
			const mqlog_group_partition_info *p = &g->partitions[k];

			printf("%s{\"partition\":%" PRIu32 ",\"committed\":",
			       k ? "," : "", p->partition);
			if (p->has_committed)
				printf("%" PRIu64 ",\"commit_time\":%" PRId64,
				       p->committed, p->commit_time_ms);
			else
				fputs("null,\"commit_time\":null", stdout);
			printf(",\"start\":%" PRIu64 ",\"end\":%" PRIu64
			       ",\"lag\":%" PRIu64 ",\"owner\":",
			       p->start_offset, p->end_offset, p->lag);
			if (p->owner)
				printf("\"%016" PRIx64 "\"", p->owner);
			else
				fputs("null", stdout);
			putchar('}');
		}
		fputs("]}", stdout);
	}
	fputs("]}\n", stdout);
}

static void groups_text(const mqlog_group_info *gs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const mqlog_group_info *g = &gs[i];

		if (i)
			putchar('\n');
		printf("group %s  topic %s  generation %" PRIu64
		       "  strategy %s  live members %zu  lag %" PRIu64 "\n",
		       g->group, g->topic, g->generation,
		       strategy_name(g->strategy), g->live_members, g->lag);
		if (g->member_count) {
			printf("  %-16s  %8s  %5s  %10s  %10s\n", "MEMBER",
			       "PID", "ALIVE", "LEASE_MS", "PARTITIONS");
			for (size_t k = 0; k < g->member_count; k++) {
				const mqlog_group_member_info *m =
					&g->members[k];

				printf("  %016" PRIx64 "  %8" PRId32
				       "  %5s  %10" PRId64 "  %10" PRIu32 "\n",
				       m->member_id, m->pid,
				       m->alive ? "yes" : "no",
				       m->lease_left_ms, m->owned);
			}
		}
		printf("  %9s  %12s  %12s  %12s  %-16s\n", "PARTITION",
		       "COMMITTED", "END", "LAG", "OWNER");
		for (size_t k = 0; k < g->partition_count; k++) {
			const mqlog_group_partition_info *p = &g->partitions[k];
			char committed[24], owner[24];

			if (p->has_committed)
				snprintf(committed, sizeof(committed),
					 "%" PRIu64, p->committed);
			else
				strcpy(committed, "-");
			if (p->owner)
				snprintf(owner, sizeof(owner), "%016" PRIx64,
					 p->owner);
			else
				strcpy(owner, "-");
			printf("  %9" PRIu32 "  %12s  %12" PRIu64 "  %12" PRIu64
			       "  %-16s\n",
			       p->partition, committed, p->end_offset, p->lag,
			       owner);
		}
	}
}

static int cmd_groups(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	mqlog_group_info *gs = NULL;
	size_t n = 0;
	mqlog *db = NULL;
	int json = 0;
	int c, rc, ret;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			json = 1;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if (a.npos != 1)
		return usage_error(cmd, a.npos < 1 ? "missing DIR" :
						     "too many arguments");
	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	rc = mqlog_group_list(db, &gs, &n);
	if (rc != 0) {
		report(db, rc, "list groups of %s", a.pos[0]);
		mqlog_close(db);
		return exit_for(rc);
	}
	if (json)
		groups_json(gs, n);
	else
		groups_text(gs, n);
	mqlog_group_info_free(gs, n);
	mqlog_close(db);
	ret = stdout_error();
	return ret;
}

static int cmd_reset_offsets(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	struct from_spec to;
	mqlog_group_info *before = NULL, *after = NULL;
	mqlog_topic *t = NULL;
	mqlog *db = NULL;
	unsigned flags = 0;
	int has_to = 0;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_TO:
			if ((rc = opt_from(cmd, "--to", optarg, &to)) != 0)
				return rc;
			has_to = 1;
			break;
		case O_FORCE:
			flags |= MQLOG_RESET_FORCE;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if ((rc = check_group_topic(cmd, &a)) != 0)
		return rc;
	if (!has_to)
		return usage_error(cmd, "--to is required");

	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, a.pos[2], &t) != 0)
		goto out;
	/* The offsets before, for the report; none for a new group. */
	rc = mqlog_group_describe(db, a.pos[1], a.pos[2], &before);
	if (rc != 0 && rc != MQLOG_ENOENT) {
		report_lib(db, rc);
		ret = exit_for(rc);
		goto out;
	}
	switch (to.kind) {
	case FROM_EARLIEST:
		rc = mqlog_group_reset_offsets(db, a.pos[1], a.pos[2],
					       MQLOG_OFFSET_EARLIEST, flags);
		break;
	case FROM_LATEST:
		rc = mqlog_group_reset_offsets(db, a.pos[1], a.pos[2],
					       MQLOG_OFFSET_LATEST, flags);
		break;
	case FROM_OFFSET:
		rc = mqlog_group_reset_offsets(db, a.pos[1], a.pos[2],
					       to.offset, flags);
		break;
	case FROM_TIME:
		rc = mqlog_group_reset_offsets_time(db, a.pos[1], a.pos[2],
						    to.timestamp, flags);
		break;
	}
	if (rc == MQLOG_EBUSY) {
		report_lib(db, rc);
		warn("(use --force to reset anyway: the live members are "
		     "removed from the group and resume from the new "
		     "offsets)");
		goto out;
	}
	if (rc != 0) {
		report_lib(db, rc);
		ret = exit_for(rc);
		goto out;
	}
	rc = mqlog_group_describe(db, a.pos[1], a.pos[2], &after);
	if (rc != 0) {
		report_lib(db, rc);
		goto out;
	}
	printf("%9s  %12s  %12s\n", "PARTITION", "PREVIOUS", "NEW");
	for (size_t k = 0; k < after->partition_count; k++) {
		const mqlog_group_partition_info *p = &after->partitions[k];
		char prev[24] = "-";

		if (before && k < before->partition_count &&
		    before->partitions[k].has_committed)
			snprintf(prev, sizeof(prev), "%" PRIu64,
				 before->partitions[k].committed);
		printf("%9" PRIu32 "  %12s  %12" PRIu64 "\n", p->partition,
		       prev, p->committed);
	}
	ret = stdout_error();
out:
	mqlog_group_info_free(before, before ? 1 : 0);
	mqlog_group_info_free(after, after ? 1 : 0);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

static int cmd_delete_group(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	mqlog *db = NULL;
	unsigned flags = 0;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_FORCE:
			flags |= MQLOG_RESET_FORCE;
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
	}
	if ((rc = check_group_topic(cmd, &a)) != 0)
		return rc;
	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	rc = mqlog_group_delete(db, a.pos[1], a.pos[2], flags);
	if (rc != 0) {
		report_lib(db, rc);
		if (rc == MQLOG_EBUSY)
			warn("(use --force to delete it anyway: the live "
			     "members are removed from the group)");
		ret = exit_for(rc);
		goto out;
	}
	printf("deleted group %s on topic %s\n", a.pos[1], a.pos[2]);
	ret = stdout_error();
out:
	mqlog_close(db);
	return ret;
}

/* ======================================================================== */
/* dlq, dlq-replay                                                          */
/* ======================================================================== */

/* The value of header @name of @rec, or a null run. */
static mqlog_bytes header_of(const mqlog_record *rec, const char *name)
{
	mqlog_bytes v = { NULL, 0 };

	if (mqlog_record_header(rec, name, strlen(name), &v) != 1)
		v.data = NULL;
	return v;
}

/* A header value that is a decimal number, printed as one (or null). */
static void print_num_header(const mqlog_record *rec, const char *name)
{
	mqlog_bytes v = header_of(rec, name);
	size_t i;

	for (i = 0; v.data && i < v.len; i++) {
		char ch = ((const char *)v.data)[i];
		if (!(ch >= '0' && ch <= '9') && !(ch == '-' && i == 0))
			break;
	}
	if (!v.data || v.len == 0 || i != v.len) {
		fputs("null", stdout);
		return;
	}
	fwrite(v.data, 1, v.len, stdout);
}

static void dlq_print(const mqlog_record *rec, int json, int *first)
{
	static const struct {
		const char *json;   /* JSON member */
		const char *header; /* header it shows */
		int number;	    /* 1: a number */
	} f[] = {
		{ "origin_topic", "mqlog.origin.topic", 0 },
		{ "origin_partition", "mqlog.origin.partition", 1 },
		{ "origin_offset", "mqlog.origin.offset", 1 },
		{ "origin_timestamp", "mqlog.origin.timestamp", 1 },
		{ "group", "mqlog.group", 0 },
		{ "attempts", "mqlog.attempt", 1 },
		{ "reason", "mqlog.reason", 0 },
	};
	char when[64];

	if (json) {
		printf("%s{\"partition\":%" PRIu32 ",\"offset\":%" PRIu64
		       ",\"timestamp\":%" PRId64,
		       *first ? "" : ",", rec->partition, rec->offset,
		       rec->timestamp);
		for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
			printf(",\"%s\":", f[i].json);
			if (f[i].number)
				print_num_header(rec, f[i].header);
			else
				json_bytes(stdout, header_of(rec, f[i].header));
		}
		fputs(",\"key\":", stdout);
		json_bytes(stdout, rec->key);
		fputs(",\"value\":", stdout);
		json_bytes(stdout, rec->value);
		putchar('}');
		*first = 0;
		return;
	}
	format_time(rec->timestamp, when, sizeof when);
	printf("%" PRIu32 ":%" PRIu64 " %s origin=", rec->partition,
	       rec->offset, when);
	{
		mqlog_bytes v = header_of(rec, "mqlog.origin.topic");
		if (v.data)
			fwrite(v.data, 1, v.len, stdout);
		else
			putchar('?');
	}
	putchar('/');
	print_num_header(rec, "mqlog.origin.partition");
	putchar('/');
	print_num_header(rec, "mqlog.origin.offset");
	fputs(" attempts=", stdout);
	print_num_header(rec, "mqlog.attempt");
	fputs(" group=", stdout);
	c_escape(stdout, header_of(rec, "mqlog.group"));
	fputs(" reason=", stdout);
	c_escape(stdout, header_of(rec, "mqlog.reason"));
	fputs(" key=", stdout);
	c_escape(stdout, rec->key);
	fputs(" value=", stdout);
	c_escape(stdout, rec->value);
	putchar('\n');
}

static int cmd_dlq(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "max", required_argument, NULL, O_MAX },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char name[MQLOG_TOPIC_NAME_MAX + 16];
	struct args a = { 0 };
	mqlog_topic *t = NULL, *d = NULL;
	mqlog *db = NULL;
	uint64_t max = 0, shown = 0;
	int json = 0, first = 1;
	int c, rc, ret = EXIT_RUNTIME;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		rc = 0;
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_JSON:
			json = 1;
			break;
		case O_MAX:
			rc = opt_u64(cmd, "--max", optarg, 1, INT64_MAX, 0,
				     &max);
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
		if (rc != 0)
			return rc;
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;
	if (open_db(a.pos[0], MQLOG_OPEN_RDONLY, &db) != 0)
		return EXIT_RUNTIME;
	if (open_topic(db, a.pos[1], &t) != 0)
		goto out;
	snprintf(name, sizeof name, "%s.dlq", a.pos[1]);
	rc = mqlog_topic_open(db, name, &d);
	if (json) {
		fputs("{\"topic\":", stdout);
		json_cstr(stdout, a.pos[1]);
		fputs(",\"dead_letters\":[", stdout);
	}
	if (rc == 0) {
		for (uint32_t p = 0; p < mqlog_topic_partitions(d); p++) {
			mqlog_reader *r = NULL;
			mqlog_partition_info pi;
			mqlog_record rec;

			/* An empty partition may have no segment yet. */
			rc = mqlog_partition_stat(d, p, &pi);
			if (rc == 0 && pi.end_offset == pi.start_offset)
				continue;
			if (rc == 0)
				rc = mqlog_reader_open(d, p, &r);
			while (rc == 0 && (max == 0 || shown < max)) {
				rc = mqlog_reader_next(r, &rec);
				if (rc != 1)
					break;
				rc = 0;
				dlq_print(&rec, json, &first);
				shown++;
			}
			mqlog_reader_close(r);
			if (rc < 0) {
				report(db, rc, "%s/%" PRIu32, name, p);
				ret = exit_for(rc);
				goto out;
			}
		}
	} else if (rc != MQLOG_ENOENT) {
		report(db, rc, "open topic '%s'", name);
		goto out;
	}
	if (json)
		fputs("]}\n", stdout);
	else
		printf("%" PRIu64 " dead letter%s\n", shown,
		       shown == 1 ? "" : "s");
	ret = stdout_error();
out:
	mqlog_topic_close(d);
	mqlog_topic_close(t);
	mqlog_close(db);
	return ret;
}

static int cmd_dlq_replay(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, O_GROUP },
		{ "max", required_argument, NULL, O_MAX },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { 0 };
	const char *group = NULL;
	uint64_t max = 0, done = 0;
	mqlog *db = NULL;
	int c, rc;

	while ((c = next_option(cmd, argc, argv, longopts, &a)) != OPT_END) {
		rc = 0;
		switch (c) {
		case OPT_HELP:
			return 0;
		case OPT_ERROR:
			return EXIT_USAGE;
		case O_GROUP:
			if (!mqlog_group_name_valid(optarg))
				return usage_error(cmd,
						   "--group: '%s' is not a "
						   "valid group name",
						   optarg);
			group = optarg;
			break;
		case O_MAX:
			rc = opt_u64(cmd, "--max", optarg, 1, INT64_MAX, 0,
				     &max);
			break;
		default:
			return usage_error(cmd, "unexpected option");
		}
		if (rc != 0)
			return rc;
	}
	if (a.npos != 2)
		return usage_error(cmd, a.npos < 2 ? "missing DIR or TOPIC" :
						     "too many arguments");
	if ((rc = check_topic_name(cmd, a.pos[1])) != 0)
		return rc;
	if (open_db(a.pos[0], 0, &db) != 0)
		return EXIT_RUNTIME;
	{
		mqlog_topic *t = NULL;
		if (open_topic(db, a.pos[1], &t) != 0) {
			mqlog_close(db);
			return EXIT_RUNTIME;
		}
		mqlog_topic_close(t);
	}
	rc = mqlog_dlq_replay(db, a.pos[1], group, max, &done);
	if (rc == MQLOG_ENOENT && done == 0)
		rc = 0; /* no dead-letter topic: nothing to replay */
	printf("replayed %" PRIu64 " record%s\n", done, done == 1 ? "" : "s");
	if (rc != 0)
		report(db, rc, "replay %s.dlq", a.pos[1]);
	mqlog_close(db);
	if (rc != 0)
		return exit_for(rc);
	return stdout_error();
}

/* ======================================================================== */
/* Commands and main                                                        */
/* ======================================================================== */

static const struct command commands[] = {
	{
		"create",
		cmd_create,
		PROGNAME
		" create DIR TOPIC [--partitions N] [--segment-bytes B]\n"
		"         [--sync none|interval|always] [--sync-interval-ms T]\n"
		"         [--retention-ms T] [--retention-bytes B] "
		"[--max-messages N]\n"
		"         [--full-policy drop-oldest|reject|block]\n"
		"         [--max-record-bytes B] [--index-interval-bytes B] "
		"[--if-not-exists]\n"
		"         [--interest] [--max-attempts N] [--retry-delay-ms T]",
		"create a topic",
		"Create topic TOPIC in data directory DIR (DIR is created if "
		"needed).",
		"\n"
		"Options (limits apply to each partition; sizes take an "
		"optional K/M/G/T\nsuffix, powers of 1024):\n"
		"  --partitions N            partitions, 1 to 100000 "
		"(default 1)\n"
		"  --segment-bytes B         segment roll size, at least 4096 "
		"(default 1G)\n"
		"  --sync POLICY             none: page cache only (default);\n"
		"                            interval: background fdatasync "
		"every T ms;\n"
		"                            always: fdatasync before an "
		"append returns\n"
		"  --sync-interval-ms T      period of the interval policy "
		"(default 1000)\n"
		"  --retention-ms T          keep records T ms "
		"(default unlimited)\n"
		"  --retention-bytes B       keep at most B bytes "
		"(default unlimited)\n"
		"  --max-messages N          keep at most N records "
		"(default unlimited)\n"
		"  --full-policy POLICY      at a limit: drop-oldest "
		"(default), reject, block\n"
		"  --max-record-bytes B      largest encoded record "
		"(default 1M)\n"
		"  --index-interval-bytes B  log bytes between index entries "
		"(default 4K)\n"
		"  --if-not-exists           succeed if the topic exists "
		"already\n"
		"  --interest                interest retention (work queue): "
		"free records once\n"
		"                            every consumer group of the topic "
		"committed past them\n"
		"  --max-attempts N          deliveries to a group before a "
		"nack dead-letters\n"
		"                            a record into TOPIC.dlq, 1 to "
		"1000 (default 5)\n"
		"  --retry-delay-ms T        default delay of a nack "
		"(default 1000)\n"
		"Limits take 'unlimited' or -1 for no limit.\n",
	},
	{
		"topics",
		cmd_topics,
		PROGNAME " topics DIR [--json]",
		"list the topics",
		"List the topics of DIR, one name a line.",
		"\n"
		"Options:\n"
		"  --json    print {\"topics\":[{\"name\":...,\"partitions\":"
		"...},...]}\n",
	},
	{
		"describe",
		cmd_describe,
		PROGNAME " describe DIR TOPIC [--json]",
		"show a topic's configuration and partitions",
		"Show the configuration of TOPIC and the state of each "
		"partition:\nstart and end offsets, records, segments, bytes, "
		"durable offset, failed flag.\nWith interest retention, the "
		"interest floor of each partition and the\ngroup holding it "
		"(the one to delete when it is dead).",
		"\n"
		"Options:\n"
		"  --json    print one JSON document "
		"{\"topic\":...,\"config\":{...},\"partitions\":[...]}\n",
	},
	{
		"produce",
		cmd_produce,
		PROGNAME
		" produce DIR TOPIC [--key-sep C] [--partition P]\n"
		"         [--sync none|interval|always] [--print-offsets]",
		"append lines of standard input as records",
		"Append the lines of standard input to TOPIC, one record a "
		"line.",
		"\n"
		"The trailing newline is not part of the record; an empty "
		"line is an empty\nvalue.  Keyed records go to the partition "
		"of their key (XXH3-64 of the key\nmodulo the partitions); "
		"records without a key fill a batch of one partition,\nthen "
		"move to another (sticky partitioning).  Records are batched "
		"per partition\nand appended when input pauses.  Produce stops "
		"at the first record that cannot\nbe written (exit 1, the "
		"input line named on stderr); the records before it stay\n"
		"written and acknowledged.\n"
		"\n"
		"Options:\n"
		"  --key-sep C       the text before the first C is the key "
		"(\\t for a tab);\n"
		"                    a line without C has a null key\n"
		"  --partition P     write every record to partition P\n"
		"  --sync POLICY     sync policy for these appends "
		"(default: the topic's)\n"
		"  --print-offsets   print \"PARTITION OFFSET\" per record, in "
		"input order,\n"
		"                    once it is durable under the sync "
		"policy\n",
	},
	{
		"consume",
		cmd_consume,
		PROGNAME
		" consume DIR TOPIC [--group G] [--partition P]\n"
		"         [--from earliest|latest|OFFSET|@EPOCH_MS] [--max N] "
		"[--idle-exit MS]\n"
		"         [--format value|kv|json] [--heartbeat-ms MS] "
		"[--nack-value V]",
		"print records, or follow the log",
		"Print the records of TOPIC, one a line.",
		"\n"
		"Without --partition every partition is read, each in offset "
		"order.  Without\n--max and --idle-exit, consume follows the "
		"log like tail -f until interrupted.\n"
		"\n"
		"Options:\n"
		"  --partition P   read partition P only\n"
		"  --from WHERE    earliest (default), latest (only new "
		"records), an OFFSET,\n"
		"                  or @EPOCH_MS: the first record stamped at "
		"or after it\n"
		"  --max N         exit after N records\n"
		"  --idle-exit MS  exit after MS milliseconds without a new "
		"record\n"
		"  --format F      value (default): the value;  kv: key TAB "
		"value;\n"
		"                  json: {\"topic\",\"partition\",\"offset\","
		"\"timestamp\",\"key\",\"value\"}\n"
		"  --group G       consume as a member of consumer group G: "
		"print the records\n"
		"                  of the partitions the group assigns, "
		"commit their offsets\n"
		"                  once printed; members started at once share "
		"the partitions,\n"
		"                  and a member that exits or dies hands its "
		"partitions over.\n"
		"                  --from then applies to partitions the group "
		"never committed\n"
		"  --heartbeat-ms MS  with --group: heartbeat period "
		"(default 1000); a dead\n"
		"                  member's partitions move within about one "
		"period\n"
		"  --nack-value V  with --group: nack the records whose value "
		"is V instead of\n"
		"                  printing them (they come back from "
		"TOPIC.retry after the\n"
		"                  topic's retry delay, and go to TOPIC.dlq "
		"after its max attempts)\n",
	},
	{
		"groups",
		cmd_groups,
		PROGNAME " groups DIR [--json]",
		"list consumer groups, members, offsets and lag",
		"List every consumer group of every topic: its generation, "
		"strategy and\nmembers (pid, liveness, lease, partitions "
		"owned), and per partition the\ncommitted offset, the log end, "
		"the lag and the owner.",
		"\n"
		"Options:\n"
		"  --json    print {\"groups\":[{\"group\":...,\"topic\":...,"
		"\"members\":[...],\n"
		"            \"partitions\":[{\"partition\",\"committed\","
		"\"end\",\"lag\",\"owner\"},...]},...]}\n",
	},
	{
		"reset-offsets",
		cmd_reset_offsets,
		PROGNAME " reset-offsets DIR GROUP TOPIC --to "
			 "earliest|latest|OFFSET|@EPOCH_MS\n"
			 "         [--force]",
		"move a group's committed offsets",
		"Set the committed offset of every partition of TOPIC for "
		"GROUP, and print\nthe previous and new offsets.  Refused while "
		"the group has live members.",
		"\n"
		"Options:\n"
		"  --to WHERE  earliest, latest, an OFFSET (clamped into each "
		"partition),\n"
		"              or @EPOCH_MS: the first record stamped at or "
		"after it\n"
		"  --force     reset even with live members: they are removed "
		"from the group\n"
		"              and rejoin from the new offsets\n",
	},
	{
		"delete-group",
		cmd_delete_group,
		PROGNAME " delete-group DIR GROUP TOPIC [--force]",
		"remove a consumer group from a topic",
		"Delete GROUP's committed offsets and membership on TOPIC.  "
		"Under interest\nretention the group no longer holds records: "
		"those every remaining group\ncommitted past are freed.  "
		"Refused while the group has live members.",
		"\n"
		"Options:\n"
		"  --force     delete even with live members: they are removed "
		"from the group\n",
	},
	{
		"dump",
		cmd_dump,
		PROGNAME " dump DIR TOPIC PARTITION [--json]\n"
			 "       " PROGNAME " dump SEGMENT_FILE [--json]",
		"print batches and records as stored",
		"Print the batches and records of a partition or of one "
		"segment file as\nstored, validating each batch.",
		"\n"
		"Stops at the first invalid batch: what was valid is printed, "
		"the error goes\nto stderr and the exit status is 3.\n"
		"\n"
		"Options:\n"
		"  --json    print one JSON document "
		"{\"batches\":[{...,\"records\":[...]}],\"error\":...}\n",
	},
	{
		"verify",
		cmd_verify,
		PROGNAME " verify DIR [TOPIC] [--json]",
		"check checksums, offsets and indexes",
		"Check every batch checksum, the offsets within and across "
		"segments, and every\nderived index entry; change nothing.  "
		"Exit status 3 when corruption is found.",
		"\n"
		"Options:\n"
		"  --json    print one JSON document "
		"{\"ok\":...,\"problems\":[...],...}\n",
	},
	{
		"dlq",
		cmd_dlq,
		PROGNAME " dlq DIR TOPIC [--json] [--max N]",
		"show the dead letters of a topic",
		"Print the records of TOPIC.dlq, the dead-letter topic of "
		"TOPIC: where each\ncame from (topic/partition/offset), its "
		"attempts, the group that gave up\non it, the reason given to "
		"its last nack, its key and value.",
		"\n"
		"Options:\n"
		"  --max N   print at most N records\n"
		"  --json    print {\"topic\":...,\"dead_letters\":[{"
		"\"partition\",\"offset\",\n"
		"            \"timestamp\",\"origin_topic\",\"origin_partition\","
		"\"origin_offset\",\n"
		"            \"origin_timestamp\",\"group\",\"attempts\","
		"\"reason\",\"key\",\"value\"},...]}\n",
	},
	{
		"dlq-replay",
		cmd_dlq_replay,
		PROGNAME " dlq-replay DIR TOPIC [--group G] [--max N]",
		"put dead letters back into their topic",
		"Append the records of TOPIC.dlq back to the topic and "
		"partition they came\nfrom, without their mqlog.* headers, "
		"and print how many.  Progress is\ncommitted with each record "
		"as the offsets of group G on TOPIC.dlq, so a\nreplay that is "
		"interrupted and run again neither skips nor repeats one;\n"
		"records dead-lettered later are replayed by the next run.",
		"\n"
		"Options:\n"
		"  --group G  the group that keeps the progress "
		"(default mqlog.replay)\n"
		"  --max N    replay at most N records\n",
	},
	{
		"recover",
		cmd_recover,
		PROGNAME " recover DIR [TOPIC]",
		"truncate torn tails, rebuild derived indexes",
		"Truncate torn tails of active segments and rebuild the "
		"derived indexes.\nCorruption inside sealed segments is "
		"reported (exit 3), never removed.\nDo not run it while other "
		"processes append.",
		"",
	},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_main_help(FILE *f)
{
	fprintf(f,
		"usage: %s COMMAND ARGS... [OPTIONS]\n"
		"       %s help COMMAND\n"
		"\n"
		"Create, inspect, produce to, replay, verify and repair an "
		"mqlog data directory.\n"
		"\n"
		"Commands:\n",
		PROGNAME, PROGNAME);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].brief);
	}
	fprintf(f,
		"\n"
		"Options:\n"
		"  -h, --help     print this help; '%s COMMAND --help' for a "
		"command\n"
		"  -V, --version  print the version\n"
		"\n"
		"Exit status: 0 success, 1 runtime error, 2 usage error, "
		"3 corruption found.\n",
		PROGNAME);
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	static char outbuf[1 << 16];
	int ret;

	/*
	 * A large buffer makes consume cheap per record; it is flushed at
	 * every idle point and by produce after every append round.
	 */
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	/*
	 * A closed output pipe is seen as EPIPE on write, so that the tool
	 * can still close its handles (which writes the buffered indexes).
	 */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2)
		return usage_error(NULL, "no command given");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_main_help(stdout);
		return stdout_error();
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("%s %s\n", PROGNAME, TOOL_VERSION);
		return stdout_error();
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc == 2) {
			print_main_help(stdout);
			return stdout_error();
		}
		if (argc > 3)
			return usage_error(NULL, "help takes one COMMAND");
		cmd = find_command(argv[2]);
		if (cmd == NULL)
			return usage_error(NULL, "unknown command '%s'",
					   argv[2]);
		print_help(cmd, stdout);
		return stdout_error();
	}
	cmd = find_command(argv[1]);
	if (cmd == NULL) {
		if (argv[1][0] == '-')
			return usage_error(NULL, "unknown option '%s'",
					   argv[1]);
		return usage_error(NULL, "unknown command '%s'", argv[1]);
	}
	ret = cmd->run(cmd, argc - 1, argv + 1);
	if (fflush(stdout) != 0 && ret == 0)
		ret = EXIT_RUNTIME;
	return ret;
}
