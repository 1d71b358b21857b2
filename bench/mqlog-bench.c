/*
 * mqlog-bench - the benchmark harness of mqlog: throughput and latency of
 * the library, and of the alternatives a user would pick instead, in one
 * run.  The full reference is the man page, docs/mqlog-bench.1.
 *
 *   mqlog-bench produce  [--size B] [--count N] [--partitions P]
 *                        [--producers T] [--processes] [--batch K]
 *                        [--sync none|interval|always] [--dir D] [--json]
 *   mqlog-bench consume  [same sizing options] [--consumers T] [--json]
 *   mqlog-bench e2e      [--size B] [--count N] [--rate R] [--spin] [--json]
 *   mqlog-bench compare  [--size B] [--count N] [--batch K] [--sync ...]
 *                        [--engines LIST] [--json]
 *   mqlog-bench recovery [--segments N] [--bytes B] [--json]
 *
 * and, for all but recovery, --reps N, --sweep KEY=V1,V2,..., --csv,
 * --plot FILE.png and --quiet.  This file holds the command line: the
 * options, which workload takes which, their defaults, and main().
 *
 * Exit codes: 0 success, 1 runtime error (message on stderr), 2 usage
 * error (including an option the workload does not take).
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
	"usage: mqlog-bench produce  [--size B] [--count N] [--partitions P]\n"
	"                            [--producers T] [--processes] [--batch K]\n"
	"                            [--sync none|interval|always] [--dir D] [--json]\n"
	"                            [--max-messages N]\n"
	"       mqlog-bench consume  [same sizing options] [--consumers T] [--json]\n"
	"       mqlog-bench e2e      [--size B] [--count N] [--rate R] [--json]\n"
	"                            [sizing options] [--consumers T] [--processes]\n"
	"                            [--spin] [--wait-spin US]\n"
	"       mqlog-bench compare  [--size B] [--count N] [--batch K] [--sync ...]\n"
	"                            [--partitions P] [--producers T] [--consumers T]\n"
	"                            [--engines mqlog,file,lmdb,sqlite] [--json]\n"
	"       mqlog-bench recovery [--segments N] [--bytes B] [--size B] [--batch K]\n"
	"                            [--segment-bytes B] [--json]\n"
	"\n"
	"Every workload also takes --reps N (median of N runs), --dir D, --json,\n"
	"--csv and --quiet; all but recovery take --sweep KEY=V1,V2,... (KEY one\n"
	"of partitions, size, batch, producers, consumers, rate) and --plot FILE.png\n"
	"(needs gnuplot).  Sizes take a K, M, G or T suffix (powers of 1024).\n"
	"\n"
	"Defaults: --size 100 --count 1000000 --partitions 1 --producers 1\n"
	"--consumers 1 --batch 1000 --sync none --reps 1; e2e: --count 200000\n"
	"--batch 1 --consumers P, and without --rate one run at 100000 records/s\n"
	"and one flat out; compare: --reps 3, every engine built in; recovery:\n"
	"--segments 10000 --bytes 1G --size 1000 --reps 3.  Without --dir a\n"
	"temporary directory is used and removed.  See mqlog-bench(1).\n";

const char *mode_name(enum bench_mode m)
{
	static const char *names[] = { "produce", "consume", "e2e", "compare",
				       "recovery" };

	return names[m];
}

const char *sync_name(int sync)
{
	switch (sync) {
	case MQLOG_SYNC_INTERVAL:
		return "interval";
	case MQLOG_SYNC_ALWAYS:
		return "always";
	default:
		return "none";
	}
}

const char *engine_name(enum engine_id e)
{
	static const char *names[] = { "mqlog", "file", "lmdb", "sqlite" };

	return names[e];
}

const struct engine_ops *engine_ops_of(enum engine_id e)
{
	switch (e) {
	case ENGINE_MQLOG:
		return &engine_mqlog;
	case ENGINE_FILE:
		return &baseline_file;
	case ENGINE_LMDB:
		return &baseline_lmdb;
	case ENGINE_SQLITE:
#ifdef MQLOG_BENCH_SQLITE
		return &baseline_sqlite;
#else
		return NULL;
#endif
	default:
		return NULL;
	}
}

/* ------------------------------------------------------------------------ */
/* Which workload takes which option                                        */
/* ------------------------------------------------------------------------ */

#define OPTS_COMMON                                                       \
	(OPT_SIZE | OPT_BATCH | OPT_REPS | OPT_DIR | OPT_JSON | OPT_CSV | \
	 OPT_QUIET | OPT_SEGMENT_BYTES)
#define OPTS_PRODUCE                                                \
	(OPTS_COMMON | OPT_COUNT | OPT_PARTITIONS | OPT_PRODUCERS | \
	 OPT_PROCESSES | OPT_SYNC | OPT_SWEEP | OPT_PLOT)

static uint32_t allowed(enum bench_mode m)
{
	switch (m) {
	case MODE_PRODUCE:
		return OPTS_PRODUCE | OPT_MAX_MESSAGES;
	case MODE_CONSUME:
		return OPTS_PRODUCE | OPT_CONSUMERS;
	case MODE_E2E:
		return OPTS_PRODUCE | OPT_CONSUMERS | OPT_RATE | OPT_SPIN |
		       OPT_WAIT_SPIN;
	case MODE_COMPARE:
		return (OPTS_PRODUCE & ~OPT_PROCESSES) | OPT_CONSUMERS |
		       OPT_ENGINES;
	case MODE_RECOVERY:
		return OPTS_COMMON | OPT_BYTES | OPT_SEGMENTS;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A decimal number in [min, max]; with @suffix, an optional K, M, G or T
 * (powers of 1024).  Strict: anything else is a usage error naming @opt.
 */
static uint64_t parse_num(const char *opt, const char *s, uint64_t min,
			  uint64_t max, bool suffix)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!s)
		usage_error("%s needs a value", opt);
	if (*s < '0' || *s > '9')
		usage_error("%s: not a number: '%s'", opt, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (suffix && *end && !end[1]) {
		switch (*end) {
		case 'K':
		case 'k':
			shift = 10;
			break;
		case 'M':
		case 'm':
			shift = 20;
			break;
		case 'G':
		case 'g':
			shift = 30;
			break;
		case 'T':
		case 't':
			shift = 40;
			break;
		default:
			break;
		}
		if (shift)
			end++;
	}
	if (errno || *end)
		usage_error("%s: not a number%s: '%s'", opt,
			    suffix ? " (with an optional K/M/G/T suffix)" : "",
			    s);
	if (shift && v > (UINT64_MAX >> shift))
		usage_error("%s: %s is too large", opt, s);
	v <<= shift;
	if (v < min || v > max)
		usage_error("%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]",
			    opt, s, min, max);
	return (uint64_t)v;
}

/* Limits of each numeric option (shared by --sweep). */
#define SIZE_MAX_B (255ull << 20) /* the library's record limit, less room */
#define COUNT_MAX  (UINT64_MAX / 4)
#define BATCH_MAX  (1ull << 20)

static uint64_t parse_sweep_value(enum sweep_key k, const char *s)
{
	switch (k) {
	case SWEEP_PARTITIONS:
		return parse_num("--sweep partitions", s, 1,
				 MQLOG_MAX_PARTITIONS, false);
	case SWEEP_SIZE:
		return parse_num("--sweep size", s, 0, SIZE_MAX_B, true);
	case SWEEP_BATCH:
		return parse_num("--sweep batch", s, 1, BATCH_MAX, false);
	case SWEEP_PRODUCERS:
		return parse_num("--sweep producers", s, 1, MAX_THREADS, false);
	case SWEEP_CONSUMERS:
		return parse_num("--sweep consumers", s, 1, MAX_THREADS, false);
	case SWEEP_RATE:
		return parse_num("--sweep rate", s, 0, 1000000000ull, false);
	default:
		return 0;
	}
}

static void parse_sweep(const char *s, struct bench_opts *o)
{
	static const struct {
		const char *name;
		enum sweep_key key;
		uint32_t opt; /* the option it stands for */
	} keys[] = {
		{ "partitions", SWEEP_PARTITIONS, OPT_PARTITIONS },
		{ "size", SWEEP_SIZE, OPT_SIZE },
		{ "batch", SWEEP_BATCH, OPT_BATCH },
		{ "producers", SWEEP_PRODUCERS, OPT_PRODUCERS },
		{ "consumers", SWEEP_CONSUMERS, OPT_CONSUMERS },
		{ "rate", SWEEP_RATE, OPT_RATE },
	};
	const char *eq, *v;
	char item[64];
	size_t i;

	if (!s)
		usage_error("--sweep needs a value (KEY=V1,V2,...)");
	eq = strchr(s, '=');
	if (!eq || !eq[1])
		usage_error("--sweep: expected KEY=V1,V2,..., not '%s'", s);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strlen(keys[i].name) == (size_t)(eq - s) &&
		    !strncmp(s, keys[i].name, (size_t)(eq - s)))
			break;
	if (i == sizeof keys / sizeof keys[0])
		usage_error("--sweep: unknown key '%.*s' (partitions, size, "
			    "batch, producers, consumers or rate)",
			    (int)(eq - s), s);
	if (!(allowed(o->mode) & keys[i].opt))
		usage_error("%s: --sweep %s does not apply (it has no --%s)",
			    mode_name(o->mode), keys[i].name, keys[i].name);
	o->sweep = keys[i].key;
	o->nsweep = 0;
	for (v = eq + 1; *v;) {
		const char *end = strchr(v, ',');
		size_t len = end ? (size_t)(end - v) : strlen(v);

		if (!len || len >= sizeof item)
			usage_error("--sweep: bad value list '%s'", eq + 1);
		if (o->nsweep == MAX_SWEEP)
			usage_error("--sweep: at most %d values", MAX_SWEEP);
		memcpy(item, v, len);
		item[len] = '\0';
		o->sweep_v[o->nsweep++] = parse_sweep_value(o->sweep, item);
		v += len;
		if (*v == ',') {
			v++;
			if (!*v)
				usage_error("--sweep: bad value list '%s'",
					    eq + 1);
		}
	}
}

static unsigned parse_engines(const char *s)
{
	unsigned mask = 0;

	if (!s || !*s)
		usage_error("--engines needs a value (e.g. mqlog,file)");
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		int e;

		for (e = 0; e < ENGINE_COUNT; e++)
			if (strlen(engine_name((enum engine_id)e)) == len &&
			    !strncmp(s, engine_name((enum engine_id)e), len))
				break;
		if (e == ENGINE_COUNT)
			usage_error("--engines: unknown engine '%.*s' (mqlog, "
				    "file, lmdb, sqlite)",
				    (int)len, s);
		if (!engine_ops_of((enum engine_id)e))
			usage_error("--engines: %s is not built in (meson did "
				    "not find sqlite3)",
				    engine_name((enum engine_id)e));
		mask |= 1u << e;
		s += len;
		if (*s == ',')
			s++;
	}
	return mask;
}

static int parse_sync(const char *v)
{
	if (!v)
		usage_error("--sync needs a value");
	if (!strcmp(v, "none"))
		return MQLOG_SYNC_NONE;
	if (!strcmp(v, "interval"))
		return MQLOG_SYNC_INTERVAL;
	if (!strcmp(v, "always"))
		return MQLOG_SYNC_ALWAYS;
	usage_error("--sync: expected none, interval or always, not '%s'", v);
}

void parse_options(int argc, char **argv, int from, struct bench_opts *o,
		   bool strict)
{
	static const struct {
		const char *name;
		uint32_t bit;
		bool value; /* takes a value */
	} table[] = {
		{ "--size", OPT_SIZE, true },
		{ "--count", OPT_COUNT, true },
		{ "--partitions", OPT_PARTITIONS, true },
		{ "--producers", OPT_PRODUCERS, true },
		{ "--consumers", OPT_CONSUMERS, true },
		{ "--processes", OPT_PROCESSES, false },
		{ "--batch", OPT_BATCH, true },
		{ "--sync", OPT_SYNC, true },
		{ "--rate", OPT_RATE, true },
		{ "--reps", OPT_REPS, true },
		{ "--sweep", OPT_SWEEP, true },
		{ "--engines", OPT_ENGINES, true },
		{ "--bytes", OPT_BYTES, true },
		{ "--segments", OPT_SEGMENTS, true },
		{ "--segment-bytes", OPT_SEGMENT_BYTES, true },
		{ "--dir", OPT_DIR, true },
		{ "--json", OPT_JSON, false },
		{ "--csv", OPT_CSV, false },
		{ "--plot", OPT_PLOT, true },
		{ "--quiet", OPT_QUIET, false },
		{ "--spin", OPT_SPIN, false },
		{ "--max-messages", OPT_MAX_MESSAGES, true },
		{ "--wait-spin", OPT_WAIT_SPIN, true },
	};

	for (int i = from; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *eq;
		char name[32];
		size_t k, nlen;

		if (strncmp(a, "--", 2) != 0)
			usage_error("unexpected argument '%s'", a);
		/* --opt=value or --opt value */
		eq = strchr(a, '=');
		nlen = eq ? (size_t)(eq - a) : strlen(a);
		if (nlen >= sizeof name)
			usage_error("unknown option '%s'", a);
		memcpy(name, a, nlen);
		name[nlen] = '\0';
		for (k = 0; k < sizeof table / sizeof table[0]; k++)
			if (!strcmp(name, table[k].name))
				break;
		if (k == sizeof table / sizeof table[0])
			usage_error("unknown option '%s'", name);
		if (strict && !(allowed(o->mode) & table[k].bit))
			usage_error("%s does not take %s", mode_name(o->mode),
				    name);
		if (strict && (o->given & table[k].bit))
			usage_error("%s given twice", name);
		if (table[k].value) {
			if (eq)
				v = eq + 1;
			else if (i + 1 < argc)
				v = argv[++i];
			else
				usage_error("%s needs a value", name);
		} else if (eq) {
			usage_error("%s takes no value", name);
		}
		o->given |= table[k].bit;

		switch (table[k].bit) {
		case OPT_SIZE:
			o->size = parse_num(name, v, 0, SIZE_MAX_B, true);
			break;
		case OPT_COUNT:
			o->count = parse_num(name, v, 1, COUNT_MAX, false);
			break;
		case OPT_PARTITIONS:
			o->partitions = (uint32_t)parse_num(
				name, v, 1, MQLOG_MAX_PARTITIONS, false);
			break;
		case OPT_PRODUCERS:
			o->producers = (unsigned)parse_num(name, v, 1,
							   MAX_THREADS, false);
			break;
		case OPT_CONSUMERS:
			o->consumers = (unsigned)parse_num(name, v, 1,
							   MAX_THREADS, false);
			break;
		case OPT_PROCESSES:
			o->processes = true;
			break;
		case OPT_BATCH:
			o->batch = parse_num(name, v, 1, BATCH_MAX, false);
			break;
		case OPT_SYNC:
			o->sync = parse_sync(v);
			break;
		case OPT_RATE:
			o->rate = parse_num(name, v, 0, 1000000000ull, false);
			break;
		case OPT_REPS:
			o->reps = (unsigned)parse_num(name, v, 1, MAX_REPS,
						      false);
			break;
		case OPT_SWEEP:
			parse_sweep(v, o);
			break;
		case OPT_ENGINES:
			o->engines = parse_engines(v);
			break;
		case OPT_BYTES:
			o->bytes = parse_num(name, v, 0, 1ull << 40, true);
			break;
		case OPT_SEGMENTS:
			o->segments = parse_num(name, v, 0, 10000000, false);
			break;
		case OPT_SEGMENT_BYTES:
			o->segment_bytes =
				parse_num(name, v, 4096, 1ull << 40, true);
			break;
		case OPT_DIR:
			if (!*v)
				usage_error("--dir needs a value");
			o->dir = v;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_CSV:
			o->csv = true;
			break;
		case OPT_PLOT:
			if (!*v)
				usage_error("--plot needs a file name");
			o->plot = v;
			break;
		case OPT_MAX_MESSAGES:
			o->max_messages = (int64_t)parse_num(name, v, 1,
							     INT64_MAX, false);
			break;
		case OPT_WAIT_SPIN:
			o->wait_spin_us =
				(int64_t)parse_num(name, v, 0, 1000000, false);
			break;
		case OPT_SPIN:
			o->spin = true;
			break;
		case OPT_QUIET:
			break;
		}
	}
}

/* Fill what was not given with the workload's defaults; check the mix. */
static void finish_options(struct bench_opts *o)
{
	uint32_t g = o->given;

	if (!(g & OPT_SIZE))
		o->size = o->mode == MODE_RECOVERY ? 1000 : 100;
	if (!(g & OPT_WAIT_SPIN))
		o->wait_spin_us = -1;
	if (!(g & OPT_COUNT))
		o->count = o->mode == MODE_E2E ? 200000 : 1000000;
	if (!(g & OPT_BATCH))
		o->batch = o->mode == MODE_E2E ? 1 : 1000;
	if (!(g & OPT_REPS))
		o->reps = o->mode == MODE_COMPARE || o->mode == MODE_RECOVERY ?
				  3 :
				  1;
	if (!(g & OPT_ENGINES))
		for (int e = 0; e < ENGINE_COUNT; e++)
			if (engine_ops_of((enum engine_id)e))
				o->engines |= 1u << e;
	if (!(g & OPT_CONSUMERS) && o->mode == MODE_E2E)
		o->consumers = o->partitions < MAX_THREADS ? o->partitions :
							     MAX_THREADS;
	if (!(g & OPT_SEGMENTS))
		o->segments = 10000;
	if (!(g & OPT_BYTES))
		o->bytes = 1ull << 30;
	o->progress = !(g & OPT_QUIET) && isatty(2);

	if (o->json && o->csv)
		usage_error("--json and --csv exclude each other");
	if (o->sweep != SWEEP_NONE) {
		static const uint32_t bit[] = {
			[SWEEP_PARTITIONS] = OPT_PARTITIONS,
			[SWEEP_SIZE] = OPT_SIZE,
			[SWEEP_BATCH] = OPT_BATCH,
			[SWEEP_PRODUCERS] = OPT_PRODUCERS,
			[SWEEP_CONSUMERS] = OPT_CONSUMERS,
			[SWEEP_RATE] = OPT_RATE,
		};

		if (g & bit[o->sweep])
			usage_error("--sweep varies an option that is also "
				    "given on its own");
	}
	if (o->mode == MODE_E2E) {
		bool small = !(o->sweep == SWEEP_SIZE) && o->size < 8;

		for (unsigned i = 0; o->sweep == SWEEP_SIZE && i < o->nsweep;
		     i++)
			small |= o->sweep_v[i] < 8;
		if (small)
			usage_error("e2e: --size must be at least 8 (the send "
				    "time travels in the record)");
	}
	if (o->mode == MODE_RECOVERY) {
		if (o->batch * o->size > (1ull << 30))
			usage_error("recovery: --batch x --size is over 1 GiB");
		if (!o->segments && !o->bytes)
			usage_error("recovery: --segments 0 and --bytes 0 "
				    "leave nothing to measure");
		if (o->bytes && o->size == 0)
			usage_error("recovery: --size 0 writes no bytes");
	}
}

void argvb_add(struct argvb *b, const char *s)
{
	size_t len = strlen(s) + 1;

	if (b->argc + 1 >= (int)(sizeof b->argv / sizeof b->argv[0]) ||
	    len > sizeof b->buf - b->used)
		die("child arguments too long");
	memcpy(b->buf + b->used, s, len);
	b->argv[b->argc++] = b->buf + b->used;
	b->argv[b->argc] = NULL;
	b->used += len;
}

void opts_to_argv(const struct bench_opts *o, struct argvb *b)
{
	const struct {
		const char *name;
		uint64_t v;
	} nums[] = {
		{ "--size", o->size },
		{ "--count", o->count },
		{ "--partitions", o->partitions },
		{ "--producers", o->producers },
		{ "--consumers", o->consumers },
		{ "--batch", o->batch },
		{ "--rate", o->rate },
		{ "--bytes", o->bytes },
		{ "--segments", o->segments },
		{ "--segment-bytes", o->segment_bytes },
		{ "--max-messages", (uint64_t)o->max_messages },
	};
	char num[32];

	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if ((!strcmp(nums[i].name, "--segment-bytes") ||
		     !strcmp(nums[i].name, "--max-messages")) &&
		    !nums[i].v)
			continue;
		snprintf(num, sizeof num, "%" PRIu64, nums[i].v);
		argvb_add(b, nums[i].name);
		argvb_add(b, num);
	}
	argvb_add(b, "--sync");
	argvb_add(b, sync_name(o->sync));
	if (o->spin)
		argvb_add(b, "--spin");
	if (o->wait_spin_us >= 0) {
		snprintf(num, sizeof num, "%" PRId64, o->wait_spin_us);
		argvb_add(b, "--wait-spin");
		argvb_add(b, num);
	}
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct results r = { NULL, 0, 0 };

	if (argc < 2)
		usage_error("missing command");
	if (!strcmp(argv[1], "__worker"))
		return worker_child_main(argc, argv);
	if (!strcmp(argv[1], "__recovery"))
		return recovery_child_main(argc, argv);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}

	memset(&o, 0, sizeof o);
	o.partitions = 1;
	o.producers = 1;
	o.consumers = 1;
	o.sync = MQLOG_SYNC_NONE;
	if (!strcmp(argv[1], "produce"))
		o.mode = MODE_PRODUCE;
	else if (!strcmp(argv[1], "consume"))
		o.mode = MODE_CONSUME;
	else if (!strcmp(argv[1], "e2e"))
		o.mode = MODE_E2E;
	else if (!strcmp(argv[1], "compare"))
		o.mode = MODE_COMPARE;
	else if (!strcmp(argv[1], "recovery"))
		o.mode = MODE_RECOVERY;
	else
		usage_error("unknown command '%s'", argv[1]);
	parse_options(argc, argv, 2, &o, true);
	finish_options(&o);
	plot_check(&o);

	(void)bench_root(&o);
	if (o.mode == MODE_RECOVERY)
		run_recovery(&o, &r);
	else
		run_workload(&o, &r);
	report(&o, &r);
	results_free(&r);
	return 0; /* the temporary directory is removed at exit */
}
