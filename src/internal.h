/*
 * internal.h - contracts between the modules of libmqlog.
 *
 * Dependencies run one way: mqlog.c -> topic.c -> partition.c / reader.c ->
 * segment.c / index.c / state.c -> record.c, io.c.  Nothing here is exported
 * from the shared library; tests link the internal static library.
 */
#ifndef MQLOG_INTERNAL_H
#define MQLOG_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mqlog.h"

#define MQ_UNUSED(x)   ((void)(x))
#define MQ_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MQ_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ======================================================================== */
/* Error messages (mqlog.c)                                                 */
/* ======================================================================== */

/*
 * mq_err - set the calling thread's message and return @rc.  The format is
 * printf-like.  Use it at the point where the error is raised.
 */
int mq_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * mq_err_wrap - prefix the calling thread's current message with a context
 * ("orders/3: " + old message) and return @rc.  Used as errors travel up.
 */
int mq_err_wrap(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * mq_err_pass - set the calling thread's message to @msg as it is (one
 * captured from another thread that did the work) and return @rc.
 */
int mq_err_pass(int rc, const char *msg);

/* Map an errno value to our return convention (-errno). */
static inline int mq_errno_rc(int e)
{
	return e > 0 ? -e : MQLOG_EIO;
}

/* Wall clock in ms since the epoch, and a monotonic clock in ns. */
int64_t mq_now_ms(void);
uint64_t mq_mono_ns(void);

/* ======================================================================== */
/* I/O layer (io.c)                                                         */
/* ======================================================================== */

/*
 * All file I/O of the engine goes through these wrappers so that tests can
 * inject faults (and, later, a power-loss model).  They return 0 / a byte
 * count, or -errno; short writes are retried inside io_pwrite_all.
 */
enum io_op {
	IO_OP_OPEN,
	IO_OP_WRITE,
	IO_OP_SYNC,
	IO_OP_DIRSYNC,
	IO_OP_TRUNCATE,
	IO_OP_RENAME,
	IO_OP_UNLINK,
	IO_OP_MKDIR,
	IO_OP_COUNT_
};

int io_open(const char *path, int flags, mode_t mode);
int io_close(int fd);
int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/*
 * Write @iovcnt (at most IO_IOV_MAX) buffers back to back at @off, retrying
 * short writes.  One pwritev(2), or, while faults are armed or writes are
 * recorded, one io_pwrite_all() per buffer.
 */
#define IO_IOV_MAX 64
struct iovec;
int io_pwritev_all(int fd, const struct iovec *iov, int iovcnt, uint64_t off);
ssize_t io_pread(int fd, void *buf, size_t len, uint64_t off);
int io_fdatasync(int fd);
int io_fsync_dir(const char *dir);
int io_ftruncate(int fd, uint64_t len);
int io_rename(const char *from, const char *to);
int io_unlink(const char *path);
int io_mkdir(const char *path, mode_t mode);
int io_rmtree(const char *path);
int io_file_size(int fd, uint64_t *size);
/* Start writeback of [off, off+len) without waiting for it (best effort). */
void io_writeback(int fd, uint64_t off, uint64_t len);
/* Reserve blocks for [off, off+len) without changing the file size. */
int io_preallocate(int fd, uint64_t off, uint64_t len);

/*
 * Fault injection for tests: make the @nth (1-based) future call of @op
 * fail with -@err; with @sticky every later call of @op fails too.
 * io_fault_clear() disarms all.  Not for production use; thread-safe.
 */
void io_fault_set(enum io_op op, unsigned long nth, int err, bool sticky);
void io_fault_clear(void);

/*
 * io_fault_set_short - as io_fault_set() for IO_OP_WRITE, but the faulted
 * io_pwrite_all() really writes the first half of its bytes (rounded down)
 * before it fails with -@err, as a write that ran out of space part way
 * does.  Other ops ignore the short mode and just fail.
 */
void io_fault_set_short(enum io_op op, unsigned long nth, int err, bool sticky);

/* Faults that fired since the last io_fault_set*() or io_fault_clear(). */
unsigned long io_fault_fired(void);

/*
 * Recording of file operations, for the power-loss model of the tests.
 *
 * While recording is on, every wrapper above that changes a file or a
 * directory appends what it did to an in-memory log: the test replays that
 * log on a model file system and builds the states a power cut could leave
 * (unsynced writes dropped, torn or zero-filled, unsynced directory entries
 * lost).  Plain read-only opens are logged too, because later fdatasync()
 * calls name their descriptor, not a path.  Failed calls are logged with
 * their return code (a short write with the bytes that did reach the file).
 * Off by default; the cost when off is one load and branch per call.
 * Thread-safe; not for production use.
 */
enum io_rec_op {
	IO_REC_OPEN,	 /* path, fd, flags (O_CREAT / O_TRUNC matter) */
	IO_REC_CLOSE,	 /* fd */
	IO_REC_WRITE,	 /* fd, off, len, data: bytes that reached the file */
	IO_REC_TRUNCATE, /* fd, len: new size */
	IO_REC_SYNC,	 /* fd: fdatasync */
	IO_REC_DIRSYNC,	 /* path: fsync of a directory */
	IO_REC_RENAME,	 /* path -> path2 */
	IO_REC_UNLINK,	 /* path */
	IO_REC_MKDIR,	 /* path */
	IO_REC_RMTREE,	 /* path: a whole tree removed */
	IO_REC_NOTE,	 /* tag: a marker the test put in (io_record_note) */
};

struct io_rec {
	enum io_rec_op op; /* what happened */
	int rc;		   /* its result: 0 (or the fd of an open) / -errno */
	int fd;		   /* descriptor, or -1 */
	int flags;	   /* open flags (IO_REC_OPEN) */
	uint64_t off;	   /* write position */
	uint64_t len;	   /* bytes written / new size */
	char *path;	   /* path as given, or NULL */
	char *path2;	   /* rename target, or NULL */
	uint8_t *data;	   /* written bytes (len of them), or NULL */
	uint64_t tag;	   /* IO_REC_NOTE: the test's tag */
};

/* Start / stop appending to the log (io_record_start also clears it). */
void io_record_start(void);
void io_record_stop(void);
/* Put a marker in the log, e.g. "append N was acknowledged". */
void io_record_note(uint64_t tag);
/* Entries recorded; io_record_get's pointer is valid until the next
 * io_record_start() or io_record_free(). */
size_t io_record_count(void);
const struct io_rec *io_record_get(size_t i);
/* Free the log (recording stops). */
void io_record_free(void);

/*
 * Crash points for the kill -9 battery: MQ_CRASH_POINT("name") kills the
 * process with SIGKILL when that point is armed, either by the environment
 * (MQLOG_CRASH_POINT=name or name:N for the N-th hit, read once) or by
 * io_crash_arm().  When nothing is armed the cost is one load and branch.
 *
 * Points: append.before_write, append.after_write, append.after_publish,
 * sync.before, sync.after, roll.after_create, roll.after_publish,
 * index.before_flush, retention.after_persist, retention.after_unlink,
 * commit.before (a group offset commit written in its LMDB transaction,
 * not committed), commit.after (committed and synced, not yet returned).
 */
extern int io_crash_armed;
void io_crash_hit(const char *name);
void io_crash_arm(const char *name, unsigned long nth);
#define MQ_CRASH_POINT(name)                                        \
	do {                                                        \
		if (MQ_UNLIKELY(__atomic_load_n(&io_crash_armed,    \
						__ATOMIC_RELAXED))) \
			io_crash_hit(name);                         \
	} while (0)

/* ======================================================================== */
/* Record batches (record.c) - the on-disk format lives there                */
/* ======================================================================== */

#define BATCH_MAGIC	      0x4D514C01u /* "MQL" + format version 1, little-endian */
#define BATCH_HEADER_SIZE     68u	  /* fixed header bytes, see record.c */
#define BATCH_BODY_CSUM_START 32u /* body checksum covers [32, length) */
#define BATCH_MAX_LENGTH      0x7FFFFFF0u

/* The fixed header of a batch, decoded (host order). */
struct batch_hdr {
	uint32_t magic;	 /* BATCH_MAGIC */
	uint32_t length; /* bytes of the whole batch, header included */
	uint64_t header_checksum; /* XXH3-64 of the header with this field zero
				   */
	uint64_t base_offset;	  /* offset of the first record */
	uint64_t body_checksum;	  /* XXH3-64 of bytes [32, length) */
	uint16_t flags;		  /* reserved for codecs and transactions: 0 */
	uint16_t reserved;	  /* 0 */
	uint32_t record_count;	  /* >= 1 */
	int64_t first_timestamp;  /* timestamp of the first record */
	int64_t max_timestamp;	  /* largest record timestamp */
	uint64_t producer_id;	  /* 0 when not idempotent */
	uint32_t base_sequence;	  /* 0 when not idempotent */
};

/*
 * batch_encoded_size - exact size of the batch that batch_encode() would
 * produce for @msgs with MQLOG_TIMESTAMP_NOW resolved to @now_ms, or
 * MQLOG_ETOOBIG (message names the record index and size) when one record
 * encodes to more than @max_record bytes or the batch exceeds BATCH_MAX_LENGTH.
 * MQLOG_EINVAL for count 0 or a null header key.
 */
int batch_encoded_size(const mqlog_msg *msgs, size_t count, uint32_t max_record,
		       int64_t now_ms, size_t *size);

/*
 * batch_encode - encode @msgs into @buf (exactly @size bytes, from
 * batch_encoded_size with the same @now_ms), stamping MQLOG_TIMESTAMP_NOW
 * records with @now_ms. Fills every header field except base_offset and
 * header_checksum, and computes the body checksum.  Needs no lock.
 */
void batch_encode(void *buf, size_t size, const mqlog_msg *msgs, size_t count,
		  int64_t now_ms);

/*
 * The one-pass encoder of the append path.  batch_size_bound() gives a
 * buffer size that any encoding of @msgs fits in (-1 when the lengths
 * alone exceed BATCH_MAX_LENGTH or the array is unusable: use the exact
 * batch_encoded_size() path then, which names the problem).
 * batch_encode_checked() validates, encodes and hashes in one pass, with
 * the errors of batch_encoded_size(); *size gets the exact size.
 */
int batch_size_bound(const mqlog_msg *msgs, size_t count, size_t *bound);
int batch_encode_checked(void *buf, size_t cap, const mqlog_msg *msgs,
			 size_t count, uint32_t max_record, int64_t now_ms,
			 size_t *size);

/*
 * Record-at-a-time encoding, for producers that build a batch as records
 * arrive.  record_encoded_size() validates @m as record @index of a batch
 * whose timestamp delta (timestamp - first_timestamp) is @ts_delta and gives
 * its exact encoded size, with the errors of batch_encoded_size().
 * record_encode() writes it at @p (no checks; the caller validated it and
 * made room for it: at most RECORD_BOUND(key + value + header bytes,
 * header count) bytes) and returns the byte after it.  batch_finish()
 * completes a batch of @count such records written after the first
 * BATCH_HEADER_SIZE bytes of @buf (@size bytes in all): header fields and
 * body checksum, as batch_encode() leaves them.
 */
#define RECORD_BOUND(raw, headers) ((raw) + 36u + 10u * (headers))
int record_encoded_size(const mqlog_msg *m, uint32_t index, int64_t ts_delta,
			uint32_t max_record, size_t *size);
uint8_t *record_encode(uint8_t *p, const mqlog_msg *m, uint32_t index,
		       int64_t ts_delta);
void batch_finish(void *buf, size_t size, uint32_t count, int64_t first_ts,
		  int64_t max_ts);

/* batch_seal - set base_offset and compute the header checksum (cheap). */
void batch_seal(void *buf, uint64_t base_offset);

/*
 * batch_check_header - validate a batch header at @p with @avail readable
 * bytes: magic, length (>= header, <= avail), record_count >= 1,
 * header checksum.  Returns 0 and fills @h, or MQLOG_ECORRUPT with a reason
 * in *why (static string).  When avail < BATCH_HEADER_SIZE, or the length
 * runs past avail, returns MQLOG_ECORRUPT with why "truncated batch".
 */
int batch_check_header(const void *p, size_t avail, struct batch_hdr *h,
		       const char **why);

/* batch_check_body - verify the body checksum of a header-valid batch. */
int batch_check_body(const void *p, const struct batch_hdr *h,
		     const char **why);

/* Iterates the records of a validated batch (records are still bounds
 * checked: the checksum is not a substitute for parsing safely). */
struct batch_iter {
	const uint8_t *p;     /* next record */
	const uint8_t *end;   /* end of the batch */
	uint32_t left;	      /* records left */
	uint64_t base_offset; /* batch base offset */
	int64_t first_ts;     /* batch first timestamp */
	uint32_t index;	      /* index of the next record (its offset delta) */
};

void batch_iter_init(struct batch_iter *it, const void *batch,
		     const struct batch_hdr *h);

/*
 * batch_iter_next - decode the next record into @rec (partition left as is).
 * Returns 1, 0 at the end of the batch, or MQLOG_ECORRUPT (*why set).
 */
int batch_iter_next(struct batch_iter *it, mqlog_record *rec, const char **why);

/* Decode @count encoded headers; see mqlog_record_headers(). */
int headers_decode(const void *raw, size_t len, uint32_t count,
		   mqlog_header *out, size_t max);

/* XXH3-64 (seed 0) of a key: the default partitioner's hash. */
uint64_t record_key_hash(const void *key, size_t len);

/* ======================================================================== */
/* LMDB environment: metadata and derived indexes (index.c)                  */
/* ======================================================================== */

struct index;

/* A topic as stored in the topics database. */
struct topic_meta {
	uint32_t id;		/* never reused; derived keys start with it */
	mqlog_topic_config cfg; /* configuration */
};

/* One sparse offset index entry: a batch start. */
struct index_entry {
	uint64_t offset;   /* base offset of the batch */
	uint64_t seg_base; /* base offset of its segment */
	uint64_t pos;	   /* byte position of the batch in the segment */
};

/*
 * One time index entry: every record before @offset has a timestamp below
 * @ts (ts is the running maximum of timestamps before the batch), so a
 * search for the first record with timestamp >= T may start at the last
 * entry with ts < T.
 */
struct time_entry {
	int64_t ts;	   /* max timestamp of all records before offset */
	uint64_t offset;   /* base offset of the batch */
	uint64_t seg_base; /* its segment */
	uint64_t pos;	   /* its byte position */
};

/* Summary of a sealed segment (derived). */
struct seg_meta {
	uint64_t base;	     /* base offset (file name) */
	uint64_t size;	     /* bytes */
	uint64_t end_offset; /* last offset + 1 */
	int64_t max_ts;	     /* largest timestamp in it */
};

/* Primary per-partition state. */
struct part_meta {
	uint64_t log_start; /* first readable offset */
};

/*
 * The structural check of the LMDB file (lmdbcheck.c), so that a damaged
 * data.mdb is an error and never a crash inside LMDB.  Both return 0 or a
 * negative MQLOG_E* code with a message; damage is MQLOG_ECORRUPT with a
 * message naming @file and the page.  Neither writes anything.
 *
 * lmdbcheck_meta - before LMDB opens @file: the fields of the two meta
 * pages LMDB takes on trust (page size, flags, last page).  A missing or
 * foreign file passes: LMDB creates or rejects it itself.
 *
 * lmdbcheck_snapshot - every page reachable from the meta page of
 * transaction @txnid, which the caller holds a read transaction on (so
 * that no writer reuses its pages meanwhile); @maxkey is LMDB's largest
 * key.  Returns 1 when that meta page has been rewritten since (a writer
 * two transactions ahead): begin a new read transaction and call again.
 */
int lmdbcheck_meta(const char *file);
int lmdbcheck_snapshot(const char *file, uint64_t txnid, unsigned maxkey);

/*
 * A data.mdb larger than this is walked once per boot rather than at every
 * open (index.c): the walk costs about 0.6 ms per MB.  A variable so that
 * tests can lower it.
 */
#define IX_CHECK_EVERY_OPEN_BYTES (16u << 20)
extern uint64_t ix_check_every_open_bytes;
/* Walks of data.mdb done by this process (for tests). */
extern uint64_t ix_checks_run;

/* This boot's identity (/proc/sys/kernel/random/boot_id); false when
 * unknown (state.c). */
bool state_boot_id(uint8_t out[16]);

int index_open(const char *meta_dir, bool rdonly, uint64_t map_size,
	       struct index **out);
void index_close(struct index *ix);

/* Topics (primary; every write is durable when it returns). */
int index_topic_get(struct index *ix, const char *name, struct topic_meta *m);
int index_topic_create(struct index *ix, const char *name,
		       const mqlog_topic_config *cfg, uint32_t *id);
/* Register a topic with a known id (adopted from its topic.conf). */
int index_topic_put(struct index *ix, const char *name,
		    const struct topic_meta *m);
/* Remove topic @name (if it has id @id) and every key of topic id @id. */
int index_topic_delete(struct index *ix, const char *name, uint32_t id);
int index_topic_list(struct index *ix, char ***names, size_t *count);

/* Partitions (primary). ENOENT when never written. */
int index_part_get(struct index *ix, uint32_t tid, uint32_t part,
		   struct part_meta *m);
int index_part_put(struct index *ix, uint32_t tid, uint32_t part,
		   const struct part_meta *m);
/*
 * index_part_raise_start - store @start as the partition's log start
 * unless a higher one is stored, in one transaction (so concurrent callers
 * never move it down).  Without @durable it survives a process crash, and
 * the next durable write of any process carries it to disk.
 */
int index_part_raise_start(struct index *ix, uint32_t tid, uint32_t part,
			   uint64_t start, bool durable);

/*
 * index_write - add derived entries in one LMDB write transaction.  Any of
 * the arrays may be empty.  Entries overwrite equal keys.
 */
int index_write(struct index *ix, uint32_t tid, uint32_t part,
		const struct index_entry *oe, size_t n_oe,
		const struct time_entry *te, size_t n_te,
		const struct seg_meta *sm, size_t n_sm);

/* Largest offset entry with offset <= @offset; MQLOG_ENOENT when none. */
int index_floor_offset(struct index *ix, uint32_t tid, uint32_t part,
		       uint64_t offset, struct index_entry *out);
/* Largest time entry with ts < @ts; MQLOG_ENOENT when none. */
int index_floor_time(struct index *ix, uint32_t tid, uint32_t part, int64_t ts,
		     struct time_entry *out);
/* Summary of the segment with base @base; MQLOG_ENOENT when none. */
int index_seg_get(struct index *ix, uint32_t tid, uint32_t part, uint64_t base,
		  struct seg_meta *out);

/*
 * index_truncate - delete derived entries of a partition that describe
 * offsets >= @from (offset and time entries with offset >= @from, segment
 * summaries with end_offset > @from).
 */
int index_truncate(struct index *ix, uint32_t tid, uint32_t part,
		   uint64_t from);

/*
 * index_trim - delete derived entries of a partition below @below (offset
 * and time entries with offset < @below, summaries of segments that end at
 * or below it): what retention left unreachable.
 */
int index_trim(struct index *ix, uint32_t tid, uint32_t part, uint64_t below);

/* index_clear - delete every derived entry of a partition. */
int index_clear(struct index *ix, uint32_t tid, uint32_t part);

/*
 * Walk every offset (or time) entry of a partition in order, for verify.
 * The callback returns non-zero to stop; that value is returned.
 */
int index_foreach_offset(struct index *ix, uint32_t tid, uint32_t part,
			 int (*fn)(void *arg, const struct index_entry *e),
			 void *arg);
int index_foreach_time(struct index *ix, uint32_t tid, uint32_t part,
		       int (*fn)(void *arg, const struct time_entry *e),
		       void *arg);
/* The same for the segment summaries, in base order (recovery). */
int index_foreach_seg(struct index *ix, uint32_t tid, uint32_t part,
		      int (*fn)(void *arg, const struct seg_meta *m),
		      void *arg);

/*
 * Consumer groups (primary): membership, ownership and committed offsets
 * of one group on one topic, kept in group_members and group_offsets.
 * The protocol that reads and changes them lives in group.c; this module
 * only loads a whole group into a struct group_snap inside one LMDB
 * transaction, lets a callback change it, and stores the difference.
 */
#define GROUP_NAME_MAX	249	   /* same rule as topic names */
#define GROUP_NO_OFFSET UINT64_MAX /* no committed offset */

/* One member of a group (group_members, key: group, topic id, member id). */
struct group_member {
	uint64_t id;	     /* random, never 0 */
	int32_t pid;	     /* its process */
	uint64_t pid_start;  /* that process's start time (/proc/PID/stat
			      * field 22, clock ticks); 0 unknown */
	uint64_t pidns;	     /* inode of its pid namespace; 0 unknown */
	uint64_t boot;	     /* hash of the kernel boot id it ran under */
	int64_t lease_until; /* CLOCK_MONOTONIC ms: alive until then */
	int64_t heartbeat;   /* CLOCK_MONOTONIC ms of its last heartbeat */
	uint64_t gen;	     /* group generation it last synced at */
	uint64_t joined;     /* group generation its join created */
	uint32_t lease_ms;   /* its lease length */
};

/* One partition of a group (group_offsets, key: group, topic id, part). */
struct group_part {
	uint64_t committed; /* next offset to consume, or GROUP_NO_OFFSET */
	int64_t commit_ms;  /* wall clock ms of that commit; 0 none */
	uint64_t owner;	    /* member that owns the partition; 0 free */
	uint64_t owner_gen; /* generation at which it claimed it */
};

/*
 * A group as loaded by index_group_read()/index_group_update().  The
 * arrays are malloc'd by index.c; release with group_snap_free().
 */
struct group_snap {
	uint32_t nparts;	  /* partitions of the topic (array lengths) */
	bool exists;		  /* the group's state record exists */
	uint64_t generation;	  /* bumped at every membership change */
	uint32_t strategy;	  /* enum mqlog_assign_strategy of the group */
	uint64_t *target;	  /* [nparts] member the assignment gives each
				   * partition; 0 none */
	struct group_part *parts; /* [nparts] */
	struct group_member *members; /* [nmembers], in key order */
	size_t nmembers;	      /* members */
	size_t cap;		      /* room in members: >= nmembers + 1 */
};

/* A (group, topic id) pair that has a record in either database. */
struct group_ref {
	char name[GROUP_NAME_MAX + 1]; /* group name */
	uint32_t tid;		       /* topic id */
};

/*
 * The body of a group transaction: change @s (add at most one member,
 * which the snapshot has room for), or return an error (nothing is
 * written).  It may run more than once (the transaction is retried after
 * a map resize), so it must depend only on @s and its inputs in @arg.
 */
typedef int (*group_txn_fn)(struct group_snap *s, void *arg);

/*
 * index_group_update - load (group, tid) in a write transaction, run @fn,
 * store what it changed (the state record, members added, changed or
 * removed, partitions changed) and commit; with @durable, sync the
 * environment before returning.  Every process and thread is serialised
 * by LMDB's writer lock, so @fn sees the latest group and no one else
 * changes it meanwhile.
 */
int index_group_update(struct index *ix, const char *group, uint32_t tid,
		       uint32_t nparts, bool durable, group_txn_fn fn,
		       void *arg);

/* index_group_read - load (group, tid) in a read transaction into @s. */
int index_group_read(struct index *ix, const char *group, uint32_t tid,
		     uint32_t nparts, struct group_snap *s);

/* index_group_peek - the generation alone; MQLOG_ENOENT when no state. */
int index_group_peek(struct index *ix, const char *group, uint32_t tid,
		     uint64_t *generation);

/* index_group_list - every (group, tid) with a record, sorted, malloc'd. */
int index_group_list(struct index *ix, struct group_ref **out, size_t *n);

/*
 * index_group_clamp - set every group's committed offset of partition
 * @part of topic @tid that is above @end (the recovered log end) to @end,
 * durably; *clamped gets how many were.  Writes nothing when none is.
 */
int index_group_clamp(struct index *ix, uint32_t tid, uint32_t part,
		      uint64_t end, uint64_t *clamped);

void group_snap_free(struct group_snap *s);

/* The interest floor of one partition (interest retention). */
struct interest_floor {
	size_t groups;			/* groups registered on the topic */
	uint64_t floor;			/* lowest committed offset over them
					 * (0 for one that never committed
					 * the partition); GROUP_NO_OFFSET
					 * when groups == 0 */
	char group[GROUP_NAME_MAX + 1]; /* the group at the floor */
};

/*
 * index_interest_floor - over every group with a record of topic @tid (a
 * state record or a committed offset: it joined or committed and was not
 * deleted), the lowest committed offset of partition @part.  One read
 * transaction.
 */
int index_interest_floor(struct index *ix, uint32_t tid, uint32_t part,
			 struct interest_floor *out);

/*
 * index_group_delete - in one write transaction: load (group, tid), let
 * @check refuse (by returning an error), then delete every record of the
 * pair from both group databases, durably.  MQLOG_ENOENT when none.
 */
int index_group_delete(struct index *ix, const char *group, uint32_t tid,
		       uint32_t nparts, group_txn_fn check, void *arg);
/*
 * Delivery intents (nack, dead letters, replay): index_group_update_intent
 * runs a group transaction like index_group_update (always durable) and,
 * in the same transaction, stores the intent @val under (group, tid,
 * part, offset); MQLOG_EEXIST when one is already there.  index_intent_del
 * removes one (not forced to disk).  index_intent_list copies those of
 * (group, tid, part), or of every partition when @part is UINT32_MAX, in
 * key order; free with index_intents_free().
 */
struct intent_item {
	uint32_t part;	 /* source partition */
	uint64_t offset; /* source offset */
	void *val;	 /* the intent (malloc'd) */
	size_t len;	 /* its bytes */
};
int index_group_update_intent(struct index *ix, const char *group, uint32_t tid,
			      uint32_t nparts, group_txn_fn fn, void *arg,
			      uint32_t part, uint64_t offset, const void *val,
			      size_t len);
int index_intent_del(struct index *ix, const char *group, uint32_t tid,
		     uint32_t part, uint64_t offset);
int index_intent_list(struct index *ix, const char *group, uint32_t tid,
		      uint32_t part, struct intent_item **out, size_t *n);
void index_intents_free(struct intent_item *items, size_t n);

/* Topic config (de)serialisation, shared by index.c and topic.conf files.
 * The encoding is versioned; decode accepts shorter older versions and
 * fills missing fields with defaults. */
#define TOPIC_CONF_ENCODED_MAX 128
size_t topic_conf_encode(const struct topic_meta *m,
			 uint8_t out[TOPIC_CONF_ENCODED_MAX]);
int topic_conf_decode(const void *buf, size_t len, struct topic_meta *m);

/* Validate a configuration; MQLOG_EINVAL with a message naming the field. */
int topic_config_validate(const mqlog_topic_config *cfg);

/* ======================================================================== */
/* Little-endian / big-endian helpers                                       */
/* ======================================================================== */

#include <string.h>

static inline uint16_t mq_ld16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}
static inline uint32_t mq_ld32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint64_t mq_ld64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline void mq_st16(void *p, uint16_t v)
{
	memcpy(p, &v, 2);
}
static inline void mq_st32(void *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void mq_st64(void *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mqlog currently supports little-endian hosts only"
#endif

static inline void mq_be32(void *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}
static inline void mq_be64(void *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}
static inline uint32_t mq_ldbe32(const void *p)
{
	return __builtin_bswap32(mq_ld32(p));
}
static inline uint64_t mq_ldbe64(const void *p)
{
	return __builtin_bswap64(mq_ld64(p));
}

#endif /* MQLOG_INTERNAL_H */
