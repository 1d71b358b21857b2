/*
 * mqlog-bench - the benchmark harness of mqlog.
 *
 *   mqlog-bench produce [--size B] [--count N] [--partitions P]
 *                       [--producers T] [--batch K]
 *                       [--sync none|interval|always] [--dir D] [--json]
 *   mqlog-bench consume [same sizing options] [--consumers T] [--json]
 *   mqlog-bench e2e     (not implemented yet)
 *   mqlog-bench compare (not implemented yet)
 *
 * produce: T threads each append batches of K records of B bytes (null key)
 * round-robin over the P partitions of a fresh topic until N records are
 * written; it reports records/s, MB/s (1 MB = 10^6 bytes of value) and the
 * latency of one append call (p50/p99/p99.9/max, in microseconds).
 *
 * consume: writes N records the same way (not timed), then T threads each
 * read a share of the partitions with mqlog_reader_read() in chunks of 1024
 * records, touching the first byte of every value; it reports records/s and
 * MB/s.
 *
 * Without --dir the bench works in a fresh temporary directory and removes
 * it at the end; with --dir it uses that directory (creating it if needed),
 * replaces its topic "bench" and leaves it in place.
 *
 * Exit codes: 0 success, 1 runtime error (message on stderr), 2 usage error.
 */
#include "mqlog.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_TOPIC "bench"
#define READ_CHUNK  1024
#define MAX_THREADS 1024
/* Payload bytes prebuilt per producer thread; batches reuse slices of it. */
#define PAYLOAD_CAP (64u << 20)

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

enum bench_mode {
	MODE_PRODUCE,
	MODE_CONSUME
};

struct bench_opts {
	enum bench_mode mode;
	uint64_t size;	     /* value bytes per record */
	uint64_t count;	     /* records in all */
	uint32_t partitions; /* partitions of the topic */
	unsigned producers;  /* producer threads */
	unsigned consumers;  /* consumer threads (consume only) */
	uint64_t batch;	     /* records per append call */
	int sync;	     /* enum mqlog_sync_policy */
	const char *dir;     /* --dir, or NULL for a temporary directory */
	int json;	     /* 1 for one JSON document on stdout */
};

static const char usage_text[] =
	"usage: mqlog-bench produce [--size B] [--count N] [--partitions P]\n"
	"                           [--producers T] [--batch K]\n"
	"                           [--sync none|interval|always] [--dir D] [--json]\n"
	"       mqlog-bench consume [same sizing options] [--consumers T] [--json]\n"
	"       mqlog-bench e2e     [--size B] [--count N] [--rate R] [--json]\n"
	"       mqlog-bench compare [--size B] [--count N] [--batch K] [--sync ...] [--json]\n"
	"\n"
	"Defaults: --size 100 --count 1000000 --partitions 1 --producers 1\n"
	"--consumers 1 --batch 1000 --sync none.  Without --dir a temporary\n"
	"directory is used and removed.\n";

static void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mqlog-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nrun 'mqlog-bench --help' for the usage\n", stderr);
	exit(2);
}

/* A runtime error: the message, the library's detail, exit 1. */
static void die(const char *what, int rc) __attribute__((noreturn));

static void die(const char *what, int rc)
{
	fprintf(stderr, "mqlog-bench: %s: %s (%s)\n", what, mqlog_errmsg(NULL),
		mqlog_strerror(rc));
	exit(1);
}

static void die_errno(const char *what) __attribute__((noreturn));

static void die_errno(const char *what)
{
	fprintf(stderr, "mqlog-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* parse_u64 - a decimal number in [min, max], or a usage error. */
static uint64_t parse_u64(const char *opt, const char *s, uint64_t min,
			  uint64_t max)
{
	char *end;
	unsigned long long v;

	if (!s)
		usage_error("%s needs a value", opt);
	if (*s < '0' || *s > '9')
		usage_error("%s: not a number: '%s'", opt, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		usage_error("%s: not a number: '%s'", opt, s);
	if (v < min || v > max)
		usage_error("%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]",
			    opt, s, min, max);
	return (uint64_t)v;
}

static const char *sync_name(int sync)
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

static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	int i;

	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (!strcmp(a, "--size")) {
			o->size = parse_u64(a, v, 0, 1u << 30);
		} else if (!strcmp(a, "--count")) {
			o->count = parse_u64(a, v, 1, UINT64_MAX / 2);
		} else if (!strcmp(a, "--partitions")) {
			o->partitions = (uint32_t)parse_u64(
				a, v, 1, MQLOG_MAX_PARTITIONS);
		} else if (!strcmp(a, "--producers")) {
			o->producers =
				(unsigned)parse_u64(a, v, 1, MAX_THREADS);
		} else if (!strcmp(a, "--consumers") &&
			   o->mode == MODE_CONSUME) {
			o->consumers =
				(unsigned)parse_u64(a, v, 1, MAX_THREADS);
		} else if (!strcmp(a, "--batch")) {
			o->batch = parse_u64(a, v, 1, 1u << 20);
		} else if (!strcmp(a, "--sync")) {
			if (!v)
				usage_error("--sync needs a value");
			if (!strcmp(v, "none"))
				o->sync = MQLOG_SYNC_NONE;
			else if (!strcmp(v, "interval"))
				o->sync = MQLOG_SYNC_INTERVAL;
			else if (!strcmp(v, "always"))
				o->sync = MQLOG_SYNC_ALWAYS;
			else
				usage_error("--sync: expected none, interval "
					    "or always, not '%s'",
					    v);
		} else if (!strcmp(a, "--dir")) {
			if (!v || !*v)
				usage_error("--dir needs a value");
			o->dir = v;
		} else {
			usage_error("unknown option '%s'", a);
		}
		i++; /* the value */
	}
}

/* ------------------------------------------------------------------------ */
/* Time and the latency histogram                                           */
/* ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * A log-linear histogram of nanosecond values, HdrHistogram style, in a
 * fixed 30 KiB whatever the range:
 *
 *   values 0..127      one bucket each (exact);
 *   values >= 128      with e = floor(log2 v) and shift = e - 6, the bucket
 *                      of (v >> shift), which lies in 64..127: 64 buckets
 *                      per power of two, so every value is known within
 *                      1/64 (1.6 %).
 *
 * The exact maximum is kept beside the buckets.
 */
#define HIST_SUB     64
#define HIST_BUCKETS (2 * HIST_SUB + 57 * HIST_SUB)

struct hist {
	uint64_t n;		       /* values recorded */
	uint64_t max;		       /* largest value, exact */
	uint64_t bucket[HIST_BUCKETS]; /* counts, indexed by hist_index() */
};

static unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	shift = e - 6;
	return 2 * HIST_SUB + (shift - 1) * HIST_SUB +
	       (unsigned)((v >> shift) - HIST_SUB);
}

/* The highest value that lands in bucket @i. */
static uint64_t hist_value(unsigned i)
{
	unsigned shift, sub;

	if (i < 2 * HIST_SUB)
		return i;
	shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
	sub = (i - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
	return (((uint64_t)sub + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		into->bucket[i] += from->bucket[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
}

/* The value at quantile @q (0 < q <= 1), capped by the exact maximum. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	if (want > h->n)
		want = h->n;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			uint64_t v = hist_value(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

/* ------------------------------------------------------------------------ */
/* The temporary directory                                                  */
/* ------------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "mqlog-bench: remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void rmtree(const char *path)
{
	nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

/* The temporary directory, removed at exit (on errors too). */
static char bench_tmpdir[PATH_MAX];

static void remove_tmpdir(void)
{
	if (bench_tmpdir[0])
		rmtree(bench_tmpdir);
}

/* ------------------------------------------------------------------------ */
/* Producing                                                                */
/* ------------------------------------------------------------------------ */

struct producer {
	pthread_t thread;
	mqlog_topic *topic; /* shared topic handle */
	const struct bench_opts *o;
	unsigned id;	   /* 0 .. producers - 1 */
	uint64_t count;	   /* records this thread appends */
	int timed;	   /* 1 to record per-append latency */
	uint64_t start_ns; /* first append started */
	uint64_t end_ns;   /* last append returned */
	struct hist *hist; /* latency of one append call, ns */
	int rc;		   /* 0 or the error of the failed append */
	char err[512];	   /* its message */
};

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	const struct bench_opts *o = p->o;
	uint64_t k = o->batch < p->count ? o->batch : p->count;
	uint64_t slices, i, left = p->count;
	uint32_t part = p->id % o->partitions;
	unsigned char *payload = NULL;
	mqlog_msg *msgs = NULL;

	if (!k) {
		p->start_ns = p->end_ns = now_ns();
		return NULL;
	}

	/*
	 * Everything the loop needs is built here, once: K message structs
	 * pointing into one payload buffer of distinct, non-constant bytes.
	 * Large records share slices so that the buffer stays bounded.
	 */
	slices = o->size ? PAYLOAD_CAP / o->size : k;
	if (slices < 1)
		slices = 1;
	if (slices > k)
		slices = k;
	payload = malloc(o->size ? (size_t)(slices * o->size) : 1);
	msgs = calloc((size_t)k, sizeof *msgs);
	if (!payload || !msgs) {
		p->rc = MQLOG_ENOMEM;
		snprintf(p->err, sizeof p->err, "out of memory");
		goto out;
	}
	for (i = 0; i < slices * o->size; i++)
		payload[i] = (unsigned char)('a' + (i * 7 + p->id) % 26);
	for (i = 0; i < k; i++) {
		msgs[i].key.data = NULL;
		msgs[i].key.len = 0;
		msgs[i].value.data = payload + (i % slices) * o->size;
		msgs[i].value.len = (size_t)o->size;
		msgs[i].headers = NULL;
		msgs[i].header_count = 0;
		msgs[i].timestamp = MQLOG_TIMESTAMP_NOW;
	}

	p->start_ns = now_ns();
	while (left) {
		size_t n = (size_t)(left < k ? left : k);
		uint64_t t0 = p->timed ? now_ns() : 0;
		int rc = mqlog_append(p->topic, part, msgs, n,
				      MQLOG_SYNC_DEFAULT, NULL);

		if (rc) {
			p->rc = rc;
			snprintf(p->err, sizeof p->err,
				 "append to partition %" PRIu32 ": %s (%s)",
				 part, mqlog_errmsg(NULL), mqlog_strerror(rc));
			break;
		}
		if (p->timed)
			hist_add(p->hist, now_ns() - t0);
		left -= n;
		if (++part == o->partitions)
			part = 0;
	}
	p->end_ns = now_ns();
out:
	free(msgs);
	free(payload);
	return NULL;
}

struct result {
	const char *name;  /* case name */
	unsigned threads;  /* threads that did the timed work */
	double seconds;	   /* wall time of the timed work */
	uint64_t records;  /* records moved */
	uint64_t bytes;	   /* value bytes moved */
	int has_latency;   /* 1 when hist is meaningful */
	struct hist *hist; /* merged latencies, ns */
};

/*
 * run_producers - append o->count records with o->producers threads; with
 * @res, measure and fill it.  Exits on error.
 */
static void run_producers(mqlog_topic *topic, const struct bench_opts *o,
			  struct result *res)
{
	struct producer *ps;
	unsigned t, n = o->producers;
	uint64_t start = UINT64_MAX, end = 0;
	int failed = 0;

	ps = calloc(n, sizeof *ps);
	if (!ps)
		die_errno("calloc");
	for (t = 0; t < n; t++) {
		ps[t].topic = topic;
		ps[t].o = o;
		ps[t].id = t;
		ps[t].count = o->count / n + (t < o->count % n ? 1 : 0);
		ps[t].timed = res != NULL;
		if (res) {
			ps[t].hist = calloc(1, sizeof *ps[t].hist);
			if (!ps[t].hist)
				die_errno("calloc");
		}
	}
	for (t = 0; t < n; t++) {
		int e = pthread_create(&ps[t].thread, NULL, producer_main,
				       &ps[t]);
		if (e) {
			errno = e;
			die_errno("pthread_create");
		}
	}
	for (t = 0; t < n; t++) {
		pthread_join(ps[t].thread, NULL);
		if (ps[t].rc) {
			fprintf(stderr, "mqlog-bench: producer %u: %s\n", t,
				ps[t].err);
			failed = 1;
		}
		if (ps[t].start_ns < start)
			start = ps[t].start_ns;
		if (ps[t].end_ns > end)
			end = ps[t].end_ns;
	}
	if (failed)
		exit(1);
	if (res) {
		res->threads = n;
		res->seconds = (double)(end - start) / 1e9;
		res->records = o->count;
		res->bytes = o->count * o->size;
		res->has_latency = 1;
		for (t = 0; t < n; t++)
			hist_merge(res->hist, ps[t].hist);
	}
	for (t = 0; t < n; t++)
		free(ps[t].hist);
	free(ps);
}

/* ------------------------------------------------------------------------ */
/* Consuming                                                                */
/* ------------------------------------------------------------------------ */

struct consumer {
	pthread_t thread;
	mqlog_topic *topic;  /* shared topic handle */
	unsigned id;	     /* 0 .. consumers - 1 */
	unsigned nthreads;   /* consumers */
	uint32_t partitions; /* partitions of the topic */
	uint64_t records;    /* records read */
	uint64_t bytes;	     /* value bytes read */
	uint64_t sum;	     /* first bytes touched, so reads are not elided */
	uint64_t start_ns;   /* first read started */
	uint64_t end_ns;     /* last read returned */
	int rc;		     /* 0 or the error */
	char err[512];	     /* its message */
};

static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	mqlog_record *recs;
	uint32_t part;

	recs = calloc(READ_CHUNK, sizeof *recs);
	if (!recs) {
		c->rc = MQLOG_ENOMEM;
		snprintf(c->err, sizeof c->err, "out of memory");
		return NULL;
	}
	c->start_ns = now_ns();
	for (part = c->id; part < c->partitions; part += c->nthreads) {
		struct mqlog_partition_info info;
		mqlog_reader *r = NULL;
		int rc;

		rc = mqlog_partition_stat(c->topic, part, &info);
		if (!rc)
			rc = mqlog_reader_open(c->topic, part, &r);
		while (!rc) {
			size_t n = 0, i;

			if (mqlog_reader_position(r) >= info.end_offset)
				break;
			rc = mqlog_reader_read(r, recs, READ_CHUNK, &n);
			if (rc)
				break;
			if (!n) {
				/* The end moved back under us: cannot be. */
				rc = MQLOG_ERANGE;
				snprintf(c->err, sizeof c->err,
					 "partition %" PRIu32
					 ": log end at %" PRIu64
					 ", expected %" PRIu64,
					 part, mqlog_reader_position(r),
					 info.end_offset);
				break;
			}
			for (i = 0; i < n; i++) {
				const mqlog_bytes *v = &recs[i].value;

				if (v->len)
					c->sum +=
						*(const unsigned char *)v->data;
				c->bytes += v->len;
			}
			c->records += n;
		}
		if (rc && !c->err[0])
			snprintf(c->err, sizeof c->err,
				 "read partition %" PRIu32 ": %s (%s)", part,
				 mqlog_errmsg(NULL), mqlog_strerror(rc));
		mqlog_reader_close(r);
		if (rc) {
			c->rc = rc;
			break;
		}
	}
	c->end_ns = now_ns();
	free(recs);
	return NULL;
}

/* Where the consumers' touched bytes end up, so the reads are not elided. */
static volatile uint64_t bench_sink;

static void run_consumers(mqlog_topic *topic, const struct bench_opts *o,
			  struct result *res)
{
	struct consumer *cs;
	unsigned t, n = o->consumers;
	uint64_t start = UINT64_MAX, end = 0, records = 0, bytes = 0, sum = 0;
	int failed = 0;

	cs = calloc(n, sizeof *cs);
	if (!cs)
		die_errno("calloc");
	for (t = 0; t < n; t++) {
		cs[t].topic = topic;
		cs[t].id = t;
		cs[t].nthreads = n;
		cs[t].partitions = o->partitions;
	}
	for (t = 0; t < n; t++) {
		int e = pthread_create(&cs[t].thread, NULL, consumer_main,
				       &cs[t]);
		if (e) {
			errno = e;
			die_errno("pthread_create");
		}
	}
	for (t = 0; t < n; t++) {
		pthread_join(cs[t].thread, NULL);
		if (cs[t].rc) {
			fprintf(stderr, "mqlog-bench: consumer %u: %s\n", t,
				cs[t].err);
			failed = 1;
		}
		if (cs[t].start_ns < start)
			start = cs[t].start_ns;
		if (cs[t].end_ns > end)
			end = cs[t].end_ns;
		records += cs[t].records;
		bytes += cs[t].bytes;
		sum += cs[t].sum;
	}
	free(cs);
	if (failed)
		exit(1);
	if (records != o->count) {
		fprintf(stderr,
			"mqlog-bench: read %" PRIu64 " records, wrote %" PRIu64
			"\n",
			records, o->count);
		exit(1);
	}
	res->threads = n;
	res->seconds = (double)(end - start) / 1e9;
	res->records = records;
	res->bytes = bytes;
	res->has_latency = 0;
	bench_sink = sum; /* keeps the touched bytes observable */
}

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

static double rate(double x, double seconds)
{
	return seconds > 0 ? x / seconds : 0.0;
}

static void print_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void report(const struct bench_opts *o, const struct result *r)
{
	double msgs = rate((double)r->records, r->seconds);
	double mb = rate((double)r->bytes / 1e6, r->seconds);
	double p50 = 0, p99 = 0, p999 = 0, max = 0;

	if (r->has_latency) {
		p50 = (double)hist_quantile(r->hist, 0.50) / 1e3;
		p99 = (double)hist_quantile(r->hist, 0.99) / 1e3;
		p999 = (double)hist_quantile(r->hist, 0.999) / 1e3;
		max = (double)r->hist->max / 1e3;
	}

	if (o->json) {
		printf("{\"bench\":");
		print_json_str(o->mode == MODE_PRODUCE ? "produce" : "consume");
		printf(",\"cases\":[{\"name\":");
		print_json_str(r->name);
		printf(",\"size\":%" PRIu64 ",\"count\":%" PRIu64
		       ",\"partitions\":%" PRIu32 ",\"threads\":%u"
		       ",\"batch\":%" PRIu64 ",\"sync\":",
		       o->size, r->records, o->partitions, r->threads,
		       o->batch);
		print_json_str(sync_name(o->sync));
		printf(",\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f", msgs, mb);
		if (r->has_latency)
			printf(",\"p50_us\":%.3f,\"p99_us\":%.3f"
			       ",\"p999_us\":%.3f,\"max_us\":%.3f",
			       p50, p99, p999, max);
		else
			printf(",\"p50_us\":null,\"p99_us\":null"
			       ",\"p999_us\":null,\"max_us\":null");
		printf(",\"seconds\":%.6f}]}\n", r->seconds);
		return;
	}

	printf("mqlog-bench %s: %" PRIu32 " partition%s, %u %s thread%s, "
	       "batch %" PRIu64 ", sync %s\n\n",
	       o->mode == MODE_PRODUCE ? "produce" : "consume", o->partitions,
	       o->partitions == 1 ? "" : "s", r->threads,
	       o->mode == MODE_PRODUCE ? "producer" : "consumer",
	       r->threads == 1 ? "" : "s", o->batch, sync_name(o->sync));
	printf("%-16s %12s %8s %14s %10s %10s %10s %10s %10s %9s\n", "case",
	       "records", "size", "msgs/s", "MB/s", "p50 us", "p99 us",
	       "p999 us", "max us", "seconds");
	printf("%-16s %12" PRIu64 " %8" PRIu64 " %14.0f %10.1f ", r->name,
	       r->records, o->size, msgs, mb);
	if (r->has_latency)
		printf("%10.1f %10.1f %10.1f %10.1f ", p50, p99, p999, max);
	else
		printf("%10s %10s %10s %10s ", "-", "-", "-", "-");
	printf("%9.3f\n", r->seconds);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

/* open_topic - open @dir and a fresh topic "bench" sized for @o. */
static void open_topic(const char *dir, const struct bench_opts *o, mqlog **dbp,
		       mqlog_topic **tp)
{
	mqlog_options opts;
	mqlog_topic_config cfg;
	mqlog *db = NULL;
	mqlog_topic *t = NULL;
	int rc;

	mqlog_options_init(&opts);
	opts.flags |= MQLOG_OPEN_CREATE;
	rc = mqlog_open(dir, &opts, &db);
	if (rc)
		die("open data directory", rc);

	rc = mqlog_topic_delete(db, BENCH_TOPIC);
	if (rc && rc != MQLOG_ENOENT)
		die("delete the previous topic " BENCH_TOPIC, rc);

	mqlog_topic_config_init(&cfg);
	cfg.partitions = o->partitions;
	cfg.sync = o->sync;
	/* Leave room for the record's own encoding around the value. */
	if (o->size + 1024 > cfg.max_record_bytes)
		cfg.max_record_bytes = (uint32_t)(o->size + 1024);
	rc = mqlog_topic_create(db, BENCH_TOPIC, &cfg);
	if (rc)
		die("create topic " BENCH_TOPIC, rc);
	rc = mqlog_topic_open(db, BENCH_TOPIC, &t);
	if (rc)
		die("open topic " BENCH_TOPIC, rc);
	*dbp = db;
	*tp = t;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.size = 100,
		.count = 1000000,
		.partitions = 1,
		.producers = 1,
		.consumers = 1,
		.batch = 1000,
		.sync = MQLOG_SYNC_NONE,
	};
	struct result res = { .name = "mqlog" };
	const char *dir;
	mqlog *db = NULL;
	mqlog_topic *topic = NULL;
	int rc;

	if (argc < 2)
		usage_error("missing command");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "e2e") || !strcmp(argv[1], "compare")) {
		fprintf(stderr, "mqlog-bench: %s: not implemented yet\n",
			argv[1]);
		return 2;
	}
	if (!strcmp(argv[1], "produce"))
		o.mode = MODE_PRODUCE;
	else if (!strcmp(argv[1], "consume"))
		o.mode = MODE_CONSUME;
	else
		usage_error("unknown command '%s'", argv[1]);
	parse_args(argc, argv, &o);

	if (o.dir) {
		if (mkdir(o.dir, 0777) != 0 && errno != EEXIST)
			die_errno(o.dir);
		dir = o.dir;
	} else {
		const char *base = getenv("TMPDIR");

		if (!base || !*base)
			base = "/tmp";
		char tmpl[PATH_MAX];

		if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/mqlog-bench-XXXXXX",
				     base) >= sizeof tmpl)
			usage_error("TMPDIR is too long");
		if (!mkdtemp(tmpl))
			die_errno(tmpl);
		memcpy(bench_tmpdir, tmpl, sizeof tmpl);
		atexit(remove_tmpdir);
		dir = bench_tmpdir;
	}

	open_topic(dir, &o, &db, &topic);
	res.hist = calloc(1, sizeof *res.hist);
	if (!res.hist)
		die_errno("calloc");

	if (o.mode == MODE_PRODUCE) {
		run_producers(topic, &o, &res);
	} else {
		/* The data to read: written untimed, then made durable. */
		run_producers(topic, &o, NULL);
		rc = mqlog_topic_sync(topic);
		if (rc)
			die("sync", rc);
		run_consumers(topic, &o, &res);
	}

	report(&o, &res);
	if (fflush(stdout) != 0)
		die_errno("stdout");

	free(res.hist);
	mqlog_topic_close(topic);
	mqlog_close(db);
	return 0; /* remove_tmpdir() runs now */
}
