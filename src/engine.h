/*
 * engine.h - the in-memory objects of an open data directory: the
 * environment (struct mqlog), open topics, partitions, their shared state
 * and segments.  Used by mqlog.c, topic.c, partition.c, reader.c, state.c,
 * segment.c and verify.c.
 */
#ifndef MQLOG_ENGINE_H
#define MQLOG_ENGINE_H

#include "internal.h"

#include <limits.h>

#define MQ_PATH_MAX 4096

/* ======================================================================== */
/* Shared partition state (state.c)                                         */
/* ======================================================================== */

/*
 * The live state of a partition lives in DIR/topics/T/P/state, a small file
 * that every process of the current open epoch maps MAP_SHARED.  It is not
 * durable truth: the first process to use a partition in a new epoch (after
 * every earlier process closed or died) rebuilds it from the segments.
 *
 * The published log position (seg_base, seg_end_pos, end_offset) is written
 * under append_lock inside a sequence lock so readers, which never take a
 * lock, see the three values of one moment.
 */
#define PSTATE_MAGIC	 0x4D51535450415254ull /* "MQSTPART" */
#define PSTATE_VERSION	 1u
#define PSTATE_FILE_SIZE 4096u

/*
 * One reader pin.  A slot is claimed by a compare-and-swap of pid from 0;
 * the owner stores the base of the segment it maps before it opens the
 * file, so a deleter that scans after the store sees it, and a deleter
 * that scanned before makes the reader's open fail (the reader then
 * reports the offset as removed, as it would be).  A slot whose process
 * is gone (kill -9) is ignored and reclaimed.
 */
#define PSTATE_PINS 64
#define PIN_NONE    UINT64_MAX

struct pstate_pin {
	int32_t pid;	    /* owner process; 0: free */
	uint32_t pad;	    /* zero */
	uint64_t pid_start; /* its start time (clock ticks since boot) */
	uint64_t pidns;	    /* inode of its pid namespace */
	uint64_t seg;	    /* base of the segment it reads; PIN_NONE */
};

struct pstate {
	uint64_t magic;	  /* PSTATE_MAGIC once initialised */
	uint32_t version; /* PSTATE_VERSION */
	uint32_t pad0;	  /* zero */
	uint64_t epoch;	  /* open epoch that initialised this state */
	pthread_mutex_t append_lock; /* robust, process-shared: serialises
					appends */
	pthread_mutex_t sync_lock; /* robust, process-shared: one fdatasync at a
				      time */
	uint32_t seq;		   /* sequence lock: odd while publishing */
	uint32_t pad1;		   /* zero */
	uint64_t seg_base;	   /* base offset of the active segment */
	uint64_t seg_end_pos;	   /* valid bytes in the active segment */
	uint64_t end_offset;	   /* next offset to assign */
	uint64_t start_offset;	   /* first readable offset */
	uint64_t durable_offset;   /* offsets below it are on stable storage */
	int64_t max_ts;	    /* largest timestamp in the log (INT64_MIN: none) */
	int64_t seg_max_ts; /* largest timestamp in the active segment */
	uint64_t last_index_pos; /* position of the last index entry in the
				    active segment */
	uint32_t wake;		 /* futex word: bumped at every publish */
	uint32_t waiters;	 /* readers blocked on wake */
	uint32_t failed;      /* 1: fail-stopped after a sync or repair error */
	uint32_t deleted;     /* 1: the topic was deleted */
	uint64_t appends;     /* batches appended in this epoch (statistics) */
	uint64_t total_bytes; /* bytes in all segments (retention by bytes) */
	uint32_t space;	      /* futex word: bumped when space is freed */
	uint32_t space_waiters; /* producers blocked on space */
	uint32_t tail_trusted;	/* 1: no process closed the partition in this
				 * epoch, so published positions below are
				 * what the page cache holds (see
				 * recover_locked) */
	uint8_t boot_id[16];	/* the boot this epoch started in */
	/* Reader pins: the segment each live reader of any process has
	 * mapped; retention unlinks no segment at or above the lowest live
	 * pin (state_pin_*). */
	uint32_t pins_claimed; /* slots claimed (a hint: 0 skips the scan) */
	uint32_t pad2;	       /* zero */
	struct pstate_pin pins[PSTATE_PINS];
};

_Static_assert(sizeof(struct pstate) <= PSTATE_FILE_SIZE,
	       "the shared state must fit its file");

/* A consistent snapshot of the published position. */
struct pview {
	uint64_t seg_base;     /* active segment */
	uint64_t seg_end_pos;  /* its valid bytes */
	uint64_t end_offset;   /* log end */
	uint64_t start_offset; /* log start */
};

int state_init_locks(struct pstate *st);
void state_read_view(const struct pstate *st, struct pview *v);
void state_publish_begin(struct pstate *st);
void state_publish_end(struct pstate *st);
void state_wake(struct pstate *st);
/* Wait until st->wake differs from @seen or @timeout_ms passes (-1: forever).
 */
void state_wait(struct pstate *st, uint32_t seen, int timeout_ms);
/* The same for any futex word of the shared state with its waiter count. */
void state_wake_word(uint32_t *word, uint32_t *waiters);
/*
 * Watch the @n futex words @words for up to @ns nanoseconds, without a
 * system call; true as soon as one differs from its @seen value.
 */
bool state_spin(uint32_t *const *words, const uint32_t *seen, size_t n,
		uint64_t ns);
void state_wait_word(uint32_t *word, uint32_t *waiters, uint32_t seen,
		     int timeout_ms);

/* Claim a pin slot for a reader of this process; -1 when all are taken
 * by live readers (the reader then goes unpinned). */
int state_pin_claim(struct pstate *st);
/* Pin segment @seg (PIN_NONE: nothing) before mapping it. */
void state_pin_set(struct pstate *st, int slot, uint64_t seg);
void state_pin_release(struct pstate *st, int slot);
/*
 * state_pin_lowest - the lowest segment pinned by a live reader, or
 * PIN_NONE.  Slots of processes that are gone are freed.  @check_pids
 * false trusts every slot (no syscalls: for callers on the append path
 * that checked recently).
 */
uint64_t state_pin_lowest(struct pstate *st, bool check_pids);

/* atomics on fields of the shared mapping */
#define MQ_LOAD(p)	       __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define MQ_LOAD_RELAXED(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define MQ_STORE(p, v)	       __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define MQ_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* ======================================================================== */
/* Segments (segment.c)                                                     */
/* ======================================================================== */

#define SEG_NAME_LEN 24 /* 20 digits + ".seg" */

void segment_name(char out[SEG_NAME_LEN + 1], uint64_t base);
/* Parse "NNNNNNNNNNNNNNNNNNNN.seg"; returns false for any other name. */
bool segment_parse_name(const char *name, uint64_t *base);

/*
 * segment_list - sorted base offsets of the segments in @dir.  *bases is
 * malloc'd (may be NULL when *n == 0).
 */
int segment_list(const char *dir, uint64_t **bases, size_t *n);

/* A read-only mapping of a segment file. */
struct segmap {
	int fd;		     /* open read-only, or -1 */
	const uint8_t *base; /* mapping, or NULL */
	size_t len;	     /* mapped bytes (may exceed the file) */
	uint64_t file_size;  /* size at map time */
};

int segmap_open(struct segmap *m, const char *path, uint64_t min_len);
/* Grow the mapping so that [0, need) is mapped. */
int segmap_ensure(struct segmap *m, const char *path, uint64_t need);
void segmap_close(struct segmap *m);

/* Result of scanning a segment for its valid prefix. */
struct scan_result {
	uint64_t valid_end;   /* byte position after the last valid batch */
	uint64_t next_offset; /* offset after the last valid batch */
	uint64_t batches;     /* valid batches seen */
	int64_t max_ts;	      /* running max timestamp after the scan */
	int64_t seg_max_ts;   /* max timestamp of batches seen in this scan */
	uint64_t last_entry_pos; /* position of the last index entry emitted */
	int stop_rc;	  /* 0 clean end, MQLOG_ECORRUPT at an invalid batch */
	const char *why;  /* reason when stop_rc != 0 */
	uint64_t bad_pos; /* position of the invalid batch */
};

/* Called for each valid batch found by segment_scan. */
typedef int (*scan_batch_fn)(void *arg, uint64_t pos, const uint8_t *batch,
			     const struct batch_hdr *h);

/*
 * segment_scan - walk the batches of the mapped bytes [start, limit),
 * starting at offset @expect_offset, validating headers (and bodies when
 * @check_body), stopping at the first invalid batch or offset gap.  Emits
 * no errors: the result says where and why it stopped.
 */
/* As segment_scan, checking bodies only of batches at @check_from and
 * after (headers are always checked). */
void segment_scan_from(const uint8_t *map, uint64_t start, uint64_t limit,
		       uint64_t expect_offset, uint64_t check_from,
		       int64_t max_ts, scan_batch_fn fn, void *arg,
		       struct scan_result *res);
void segment_scan(const uint8_t *map, uint64_t start, uint64_t limit,
		  uint64_t expect_offset, bool check_body, int64_t max_ts,
		  scan_batch_fn fn, void *arg, struct scan_result *res);

/* ======================================================================== */
/* Environment, topics, partitions                                          */
/* ======================================================================== */

struct partition;

struct mqlog {
	char *path;	    /* the data directory as given */
	int lock_fd;	    /* DIR/lock, holding an OFD read lock, or -1 */
	uint64_t epoch;	    /* this open epoch (0: private read-only) */
	bool rdonly;	    /* opened read-only */
	struct index *ix;   /* the LMDB environment */
	dev_t dev;	    /* identity of the directory, for the */
	ino_t ino;	    /*   one-environment-per-process registry */
	unsigned refs;	    /* handles returned by mqlog_open (registry lock) */
	struct mqlog *next; /* registry list */

	pthread_mutex_t mu;	    /* guards topics and the flusher fields */
	struct mqlog_topic *topics; /* open topics */

	pthread_t flusher;	 /* background sync / index flush thread */
	bool flusher_running;	 /* started */
	bool stopping;		 /* ask the flusher to exit */
	pthread_cond_t cond;	 /* wakes the flusher on stop */
	uint32_t maintenance_ms; /* background retention period; 0: none */
	uint64_t spin_ns;	 /* waits spin this long before sleeping */
	double watermark;	 /* usage fraction that fires on_watermark */
	void (*on_watermark)(void *arg, const char *topic, uint32_t partition,
			     double usage);
	void *watermark_arg; /* its argument */
};

struct mqlog_topic {
	struct mqlog *db;	  /* owner */
	char *name;		  /* topic name */
	char *dir;		  /* DIR/topics/NAME */
	struct topic_meta meta;	  /* id and configuration */
	unsigned refs;		  /* open handles (db->mu) */
	struct mqlog_topic *next; /* db->topics list */
	pthread_mutex_t mu;	  /* guards lazy partition opening */
	struct partition **parts; /* meta.cfg.partitions slots, opened lazily */
	int dirs_synced;	  /* atomic: this process fsynced the topic's
				   * directory and its entry in topics/ */
};

/* Index entries buffered in memory until the next flush point. */
#define PART_IBUF_MAX 64

struct gc_req;

/* Background writeback (partition_writeback): what was appended this long
 * ago, from samples taken every flusher tick (50 ms). */
#define WB_DELAY_MS 1000
#define WB_SAMPLES  32

struct partition {
	struct mqlog_topic *t; /* owner */
	uint32_t id;	       /* partition number */
	char *dir;	       /* DIR/topics/NAME/ID */
	int state_fd;	       /* state file, or -1 for a private state */
	struct pstate *st;     /* shared (mapped) or private state */
	bool st_private;       /* st is malloc'd (read-only, stale epoch) */

	pthread_mutex_t mu;   /* guards everything below (in-process) */
	uint64_t *bases;      /* known segment bases, sorted */
	size_t nbases;	      /* entries in bases */
	int active_fd;	      /* read-write fd of the active segment, or -1 */
	uint64_t active_base; /* base offset of active_fd */
	struct index_entry ibuf[PART_IBUF_MAX]; /* buffered offset entries */
	struct time_entry tbuf[PART_IBUF_MAX];	/* buffered time entries */
	size_t nibuf;				/* entries in ibuf and tbuf */
	struct seg_meta sbuf[4]; /* buffered sealed-segment summaries */
	size_t nsbuf;		 /* entries in sbuf */
	bool dirty;    /* appended since the last sync (interval policy) */
	bool interval; /* some append asked for interval sync */
	int64_t last_sync_ms;	    /* when this process last synced it */
	bool truncate_pending;	    /* index entries >= truncate_from must go */
	uint64_t truncate_from;	    /*   before any new entry is written */
	uint64_t truncated_at_open; /* torn-tail bytes this process removed */
	uint64_t clamped_at_open;   /* group offsets it moved back to the end */
	uint64_t prealloc_base;	    /* segment that prealloc_end refers to */
	uint64_t prealloc_end; /* blocks reserved up to here (this process) */
	int wb_fd; /* flusher's descriptor of segment wb_base, or -1 */
	uint64_t wb_base;
	uint64_t wb_done;  /* it started writeback below this position */
	struct wb_sample { /* the published end at a flusher tick */
		uint64_t base, pos;
		int64_t ms;
	} wb_hist[WB_SAMPLES];
	unsigned wb_head;     /* next sample slot */
	bool above_watermark; /* the watermark callback fired, not yet reset */
	bool trust_valid;     /* for the next recovery: the page cache holds */
	uint64_t trust_base;  /*   whole batches of segment trust_base up to */
	uint64_t trust_end;   /*   byte trust_end (bodies need no check) */

	pthread_mutex_t gc_mu;	/* group commit of sync-always appends: */
	struct gc_req *gc_head; /*   queued requests, oldest first */
	struct gc_req *gc_tail;
	bool gc_leading;	  /*   a leader is appending and syncing */
	size_t gc_nq;		  /*   requests queued */
	size_t gc_last_n;	  /*   requests in the last group */
	uint64_t gc_sync_ns;	  /*   average time of its syncs */
	uint64_t gc_arrival_ns;	  /*   when the last request queued */
	uint32_t gc_seq;	  /*   futex word: bumped when a group ends */
	uint64_t pins_checked_ns; /* last liveness check of reader pins */
	pthread_mutex_t del_mu; /* one segment deleter at a time (in-process) */
	bool reap;		/* atomic: segments below the start await the
				 * background deleter */
	bool reap_kick;		/* atomic: start the background thread */
};

/* Blocks are reserved ahead of the write position in windows of this many
 * bytes: ext4 then skips delayed allocation on every buffered write. */
#define PREALLOC_WINDOW (8u << 20)

/* partition.c */
int partition_lock(struct partition *p);
void partition_unlock(struct partition *p);
void partition_publish_start(struct partition *p, uint64_t start);
int partition_open(struct mqlog_topic *t, uint32_t id, struct partition **out);
void partition_close(struct partition *p);
int partition_append(struct partition *p, const mqlog_msg *msgs, size_t n,
		     int sync, uint64_t *base);
/*
 * partition_append_encoded - append a batch of @n records that is already
 * encoded and hashed (as batch_encode() leaves it: everything but the base
 * offset and header checksum, which this sets in @buf).  The same locking,
 * limits, errors and sync as partition_append().
 */
int partition_append_encoded(struct partition *p, uint8_t *buf, size_t size,
			     size_t n, int sync, uint64_t *base);
int partition_sync(struct partition *p);
void partition_writeback(struct partition *p, int64_t now_ms);
int partition_flush_index(struct partition *p);
int partition_refresh_segments(struct partition *p);
/* Find the segment containing @offset: floor of the known bases. */
int partition_segment_for(struct partition *p, uint64_t offset,
			  uint64_t *seg_base);
/* Next segment after @base; MQLOG_ENOENT when none. */
int partition_next_segment(struct partition *p, uint64_t base, uint64_t *next);
void partition_seg_path(const struct partition *p, uint64_t base,
			char out[MQ_PATH_MAX]);
int partition_rebuild_index(struct partition *p, uint64_t *entries,
			    uint64_t *truncated);
void partition_info_fill(struct partition *p, mqlog_partition_info *info);
/* How full the partition is against its count and byte limits (0 when it
 * has none): the usage of partition_info_fill(), without its file reads. */
double partition_usage(struct partition *p);

/* retention.c */

/* What retention_admit() decided for a batch about to be appended. */
enum admit {
	ADMIT_OK = 0,	/* append it (retention may have made room) */
	ADMIT_WAIT = 1, /* BLOCK policy: release the lock and wait for space */
};

/*
 * retention_admit - apply the topic's limits to a batch of @n records and
 * @size bytes; append lock held.  Returns ADMIT_OK, ADMIT_WAIT, or
 * MQLOG_EFULL (REJECT, or a batch that can never fit) with a message.
 */
int retention_admit(struct partition *p, size_t n, size_t size);
/* Wait (append lock not held) until space is freed or @deadline_ns. */
void retention_wait(struct partition *p, uint32_t seen, uint64_t deadline_ns);
/* Delete the sealed segments wholly below @start (append lock held or
 * not: deleters in threads and processes may run concurrently). */
int retention_delete_below(struct partition *p, uint64_t start);
/* The background thread's part: delete what the count limit left below the
 * start, when an append asked for it (p->reap).  No lock held. */
int retention_reap(struct partition *p);
/* The log start recovery must use: persisted start, first segment, and
 * the exact count limit of DROP_OLDEST. */
uint64_t retention_recovered_start(const struct partition *p,
				   uint64_t persisted, uint64_t first_base,
				   uint64_t end);
/* Age and byte retention of one partition now (takes the append lock). */
int retention_maintain(struct partition *p, int64_t now_ms);
/* Watermark check after an append (no lock held). */
void retention_watermark(struct partition *p);
/* Interest retention of one partition now: move the start to the interest
 * floor and delete segments below it (takes the append lock). */
int retention_interest(struct partition *p);
/* After a group committed @offsets (NULL: unknown) of @parts: interest
 * retention of those it may have freed records in.  No lock held. */
int retention_interest_commit(struct mqlog_topic *t, const uint32_t *parts,
			      const uint64_t *offsets, size_t n);

/* topic.c */
int topic_partition(struct mqlog_topic *t, uint32_t id, struct partition **out);
int topic_reconcile(struct mqlog *db);
/* The names @topic alone, or every topic when it is NULL; free with
 * mqlog_list_free(). */
int topic_names(mqlog *db, const char *topic, char ***names, size_t *count);

/* mqlog.c */
bool mq_db_flusher_needed(struct mqlog *db);
void mq_db_start_flusher(struct mqlog *db);

#endif /* MQLOG_ENGINE_H */
