/*
 * bench.h - the pieces of mqlog-bench and how they fit.
 *
 *   mqlog-bench.c     the command line: options, their defaults per
 *                     workload, sweeps and repetitions, main()
 *   workload.c        the workers (producers, consumers, e2e consumers),
 *                     run as threads or as processes, and the crew that
 *                     starts them together and collects their results
 *   recovery.c        the recovery workload (open with many segments,
 *                     reopen after a kill -9)
 *   report.c          results: medians, the aligned table, JSON, CSV,
 *                     gnuplot plots, the progress line
 *   engine_mqlog.c    mqlog behind the engine interface below
 *   baseline_file.c   the baselines of `compare`, behind the same
 *   baseline_lmdb.c   interface: a plain append-only file, an LMDB-only
 *   baseline_sqlite.c queue, a SQLite WAL queue table
 *   util.c            time, errors, directories, child processes
 *   hist.[ch]         the log-linear latency histogram
 *
 * Every timed loop is allocation-free: payloads, message arrays, encode
 * buffers and histograms are built before the start gate opens.
 */
#ifndef MQLOG_BENCH_H
#define MQLOG_BENCH_H

#include "hist.h"
#include "mqlog.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_TOPIC	 "bench"
#define READ_CHUNK	 1024	     /* records per mqlog_reader_read() */
#define MAX_THREADS	 1024	     /* --producers / --consumers */
#define MAX_REPS	 100	     /* --reps */
#define MAX_SWEEP	 64	     /* values of one --sweep */
#define PAYLOAD_CAP	 (64u << 20) /* payload bytes prebuilt per producer */
#define E2E_DEFAULT_RATE 100000u     /* records/s of e2e's fixed-rate case */
/* The baselines' interval policy: the library's default sync_interval_ms. */
#define SYNC_INTERVAL_MS 1000u

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

enum bench_mode {
	MODE_PRODUCE,
	MODE_CONSUME,
	MODE_E2E,
	MODE_COMPARE,
	MODE_RECOVERY,
};

/* One bit per option, to know which were given and reject misplaced ones. */
enum opt_bit {
	OPT_SIZE = 1u << 0,
	OPT_COUNT = 1u << 1,
	OPT_PARTITIONS = 1u << 2,
	OPT_PRODUCERS = 1u << 3,
	OPT_CONSUMERS = 1u << 4,
	OPT_PROCESSES = 1u << 5,
	OPT_BATCH = 1u << 6,
	OPT_SYNC = 1u << 7,
	OPT_RATE = 1u << 8,
	OPT_REPS = 1u << 9,
	OPT_SWEEP = 1u << 10,
	OPT_ENGINES = 1u << 11,
	OPT_BYTES = 1u << 12,
	OPT_SEGMENTS = 1u << 13,
	OPT_SEGMENT_BYTES = 1u << 14,
	OPT_DIR = 1u << 15,
	OPT_JSON = 1u << 16,
	OPT_CSV = 1u << 17,
	OPT_PLOT = 1u << 18,
	OPT_QUIET = 1u << 19,
	OPT_SPIN = 1u << 20,
	OPT_MAX_MESSAGES = 1u << 21,
	OPT_WAIT_SPIN = 1u << 22,
};

/* What a --sweep varies. */
enum sweep_key {
	SWEEP_NONE,
	SWEEP_PARTITIONS,
	SWEEP_SIZE,
	SWEEP_BATCH,
	SWEEP_PRODUCERS,
	SWEEP_CONSUMERS,
	SWEEP_RATE,
};

/* Engines of `compare`, one bit each (--engines). */
enum engine_id {
	ENGINE_MQLOG,
	ENGINE_FILE,
	ENGINE_LMDB,
	ENGINE_SQLITE,
	ENGINE_COUNT,
};

struct bench_opts {
	enum bench_mode mode; /* the workload */
	uint64_t size;	      /* value bytes per record */
	uint64_t count;	      /* records in all (per case) */
	uint32_t partitions;  /* partitions of the topic (files, tables...) */
	unsigned producers;   /* producer threads or processes */
	unsigned consumers;   /* consumer threads or processes */
	bool processes;	      /* workers are processes, not threads */
	bool spin;	      /* e2e: consumers poll instead of waiting */
	uint64_t batch;	      /* records per append call */
	int sync;	      /* enum mqlog_sync_policy */
	uint64_t rate; /* e2e: records/s of all producers, 0 = flat out */
	unsigned reps; /* repetitions; medians are reported */
	enum sweep_key sweep;	     /* what --sweep varies, or SWEEP_NONE */
	unsigned nsweep;	     /* values in sweep_v */
	uint64_t sweep_v[MAX_SWEEP]; /* the values, in the order given */
	unsigned engines;  /* compare: bit (1 << enum engine_id) each */
	uint64_t bytes;	   /* recovery: log bytes written before the kill */
	uint64_t segments; /* recovery: segments of the open case */
	uint64_t segment_bytes; /* topic roll size, 0 = the library default */
	int64_t max_messages;	/* produce: topic record limit, 0 = none */
	int64_t wait_spin_us;	/* mqlog_options.wait_spin_us, -1 = default */
	const char *dir;	/* --dir, or NULL for a temporary directory */
	bool json;		/* one JSON document on stdout */
	bool csv;		/* CSV on stdout */
	const char *plot;	/* --plot FILE.png, or NULL */
	bool progress;	/* progress line on stderr (a TTY, no --quiet) */
	uint32_t given; /* OPT_* bits of the options given */
};

const char *mode_name(enum bench_mode m);
const char *sync_name(int sync);
const char *engine_name(enum engine_id e);

/* ------------------------------------------------------------------------ */
/* Utilities (util.c)                                                       */
/* ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in ns: one clock for every process of the machine. */
uint64_t now_ns(void);

/* Spin or sleep until now_ns() >= @target. */
void pace_until(uint64_t target);

/*
 * The calling thread's error message, set by engines and workers when they
 * fail (bench_error) and read by whoever reports it.
 */
void bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *bench_errmsg(void);

/* Fatal errors: message on stderr, exit 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* A library failure: "what: errmsg (strerror)", exit 1. */
void die_mqlog(const char *what, int rc) __attribute__((noreturn));
/* A usage error: message, hint, exit 2. */
void usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

void *xcalloc(size_t n, size_t size);

/* Remove a directory tree; missing is fine. */
void rmtree(const char *path);
/* Create @path (and parents); exits on failure. */
void mkdirs(const char *path);

/*
 * The bench's working directory: --dir, or a fresh temporary one that is
 * removed at exit.  bench_subdir() names a directory inside it for one run.
 */
const char *bench_root(const struct bench_opts *o);
bool bench_root_is_temp(void);
void bench_subdir(const struct bench_opts *o, const char *name,
		  char out[PATH_MAX]);

/* Put the values 1..size of a producer's payload: distinct, varied bytes. */
void fill_payload(unsigned char *p, size_t len, unsigned seed);

/*
 * Child processes.  spawn_worker() forks and execs this program with @argv
 * (argv[0] is replaced), the child's fd 3 being the write end of a pipe
 * whose read end is returned in *res_fd, and fd 4 the read end of @go_fd
 * (the gate: the child starts when it reads EOF).  Returns the pid.
 */
pid_t spawn_worker(char *const argv[], int go_rd, int *res_fd);
/* read() exactly @len bytes; returns bytes read (< len at EOF). */
size_t read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);

/* Ask the kernel to write back dirty pages before a timed run. */
void settle(void);

/* ------------------------------------------------------------------------ */
/* Engines (engine_mqlog.c, baseline_*.c)                                   */
/* ------------------------------------------------------------------------ */

/* What a consumer counted. */
struct read_tally {
	uint64_t records; /* records read */
	uint64_t bytes;	  /* value bytes read */
	uint64_t sum; /* first byte of every value, so reads are not elided */
};

/*
 * A store the workloads can append to and read back, partition by
 * partition.  Every function returns 0 or non-zero with bench_error() set.
 * Thread rules: append and read_part are called concurrently from several
 * threads, each with its own @tctx (from thread_init); open, sync and close
 * from one thread.
 */
struct engine_ops {
	const char *name;
	/* Open the store in @dir; with @create replace its data with an empty
	 * store of o->partitions partitions. */
	int (*open)(const struct bench_opts *o, const char *dir, bool create,
		    void **ctx);
	/* Per-thread state (buffers, connections); may set *tctx to NULL. */
	int (*thread_init)(void *ctx, void **tctx);
	void (*thread_fini)(void *ctx, void *tctx);
	/* Append @n records to @part as one batch under the sync policy. */
	int (*append)(void *ctx, void *tctx, uint32_t part,
		      const mqlog_msg *msgs, size_t n);
	/* Make everything appended durable (untimed, before reading). */
	int (*sync)(void *ctx);
	/* Read all of @part, adding to @t. */
	int (*read_part)(void *ctx, void *tctx, uint32_t part,
			 struct read_tally *t);
	void (*close)(void *ctx);
};

extern const struct engine_ops engine_mqlog;
extern const struct engine_ops baseline_file;
extern const struct engine_ops baseline_lmdb;
#ifdef MQLOG_BENCH_SQLITE
extern const struct engine_ops baseline_sqlite;
#endif

/* The engine of @e, or NULL when it is not built. */
const struct engine_ops *engine_ops_of(enum engine_id e);

/* The topic handle of an open mqlog engine context. */
mqlog_topic *engine_mqlog_topic(void *ctx);

/* ------------------------------------------------------------------------ */
/* Results (report.c)                                                       */
/* ------------------------------------------------------------------------ */

enum case_kind {
	KIND_RATE, /* throughput (and maybe latency) */
	KIND_TIME, /* a duration in ms (recovery) */
};

#define LAT_P50	 0
#define LAT_P90	 1
#define LAT_P99	 2
#define LAT_P999 3
#define LAT_MAX	 4
#define LAT_N	 5

/* One repetition of one case. */
struct sample {
	double seconds;	      /* wall time of the timed part */
	uint64_t records;     /* records moved */
	uint64_t bytes;	      /* value bytes moved */
	bool has_lat;	      /* lat_us is set */
	double lat_us[LAT_N]; /* p50, p90, p99, p99.9, max, microseconds */
	double ms;	      /* KIND_TIME: the duration */
};

/* The parameters a case ran with (after sweeps and defaults). */
struct case_params {
	uint64_t size, count, batch, rate;
	uint32_t partitions;
	unsigned producers, consumers;
	int sync;
	bool processes;
};

/* One line of the report: a case measured over the repetitions. */
struct bcase {
	char workload[16]; /* produce, consume, e2e, recovery */
	char engine[16];   /* mqlog, file, lmdb, sqlite */
	char label[64];	   /* what was measured, e.g. "e2e flat out" */
	char point[48];	   /* the sweep point ("partitions=10") or "" */
	enum case_kind kind;
	struct case_params par;
	char note[128]; /* extra detail (recovery) */
	unsigned n;	/* samples */
	struct sample s[MAX_REPS];
	struct hist *lat; /* latencies of every repetition, for plots */
};

struct results {
	struct bcase *v; /* cases in the order they first ran */
	size_t n, cap;
};

/*
 * results_case - the case with this (workload, engine, label, point),
 * created with @par and @kind when new.  The pointer stays valid until the
 * next call.
 */
struct bcase *results_case(struct results *r, const char *workload,
			   const char *engine, const char *label,
			   const char *point, enum case_kind kind,
			   const struct case_params *par);
/* Add a sample to @c, merging @lat (may be NULL) into its histogram. */
void case_add(struct bcase *c, const struct sample *s, const struct hist *lat);
/* Fill @s's latency fields from @h. */
void sample_latency(struct sample *s, const struct hist *h);

/* Print the results as the options ask (table, --json, --csv, --plot). */
void report(const struct bench_opts *o, const struct results *r);
/* Exit 1 with a message when --plot is asked and gnuplot is missing. */
void plot_check(const struct bench_opts *o);
void results_free(struct results *r);

/* The progress line (stderr, only when o->progress). */
void progress_show(const struct bench_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void progress_clear(const struct bench_opts *o);

/* ------------------------------------------------------------------------ */
/* Workers and workloads (workload.c, recovery.c)                           */
/* ------------------------------------------------------------------------ */

enum role {
	ROLE_PRODUCER,	   /* appends its share of o->count */
	ROLE_CONSUMER,	   /* reads its partitions to their end */
	ROLE_E2E_CONSUMER, /* waits for records and measures their latency */
};

/* What one worker reports; a child process writes it whole to its pipe. */
struct wres {
	int32_t rc;	   /* 0, or failed (err says why) */
	char err[480];	   /* the failure */
	uint64_t start_ns; /* the gate opened (producers: first append) */
	uint64_t end_ns;   /* the last record was handled */
	uint64_t records;  /* records appended or read */
	uint64_t bytes;	   /* value bytes */
	uint64_t sum;	   /* consumers: touched bytes */
	struct hist hist; /* producers: append-call latency; e2e: record latency
			   */
};

/* Run the workload of o->mode (not recovery) into @r. */
void run_workload(const struct bench_opts *o, struct results *r);
/* The recovery workload. */
void run_recovery(const struct bench_opts *o, struct results *r);

/*
 * The entry of a child process: "mqlog-bench __worker ROLE ID DIR OPTIONS";
 * returns the exit status.
 */
int worker_child_main(int argc, char **argv);
int recovery_child_main(int argc, char **argv);

/* An argument vector being built for a child; the strings are copies. */
struct argvb {
	char buf[2048]; /* the strings */
	size_t used;	/* bytes of buf in use */
	char *argv[64]; /* argc pointers into buf, then NULL */
	int argc;
};

/* Append a copy of @s (exits when the vector is full). */
void argvb_add(struct argvb *b, const char *s);
/* Append every option of @o with its value, explicitly. */
void opts_to_argv(const struct bench_opts *o, struct argvb *b);
/* Parse the options of @argv[from..] into @o (mode already set); with
 * @strict, reject options that do not apply to the mode. */
void parse_options(int argc, char **argv, int from, struct bench_opts *o,
		   bool strict);

/* The records each partition receives from the producers of @o. */
void expected_per_partition(const struct bench_opts *o, uint64_t *per_part);

#endif /* MQLOG_BENCH_H */
