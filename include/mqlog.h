/*
 * mqlog.h - the public interface of libmqlog.
 *
 * mqlog is an embeddable, durable, partitioned, log-structured message
 * queue: Kafka's storage model as a library.  An application opens a data
 * directory and gets topics split into partitions, each partition an
 * append-only sequence of checksummed record batches with dense offsets.
 * Several processes on one host may open the same directory at once.
 *
 * Conventions (they hold for every function below unless it says otherwise):
 *
 *  - Every fallible function returns int: 0 on success or a negative error
 *    code.  Codes are either one of the MQLOG_E* values below, or a negated
 *    errno value (-ENOSPC, -EACCES, ...) passed through from the system.
 *    mqlog_strerror() names both kinds.
 *  - After a failure, mqlog_errmsg() returns a message for the calling thread
 *    that names the file, offset or argument involved.
 *  - Constructors leave their output untouched on failure; destructors accept
 *    NULL and return nothing.
 *  - The library never prints, exits or aborts on bad input or I/O errors.
 *  - Handles are thread-safe where the function says so; a reader handle is
 *    used by one thread at a time.
 *  - A process must not use a handle it inherited through fork(); open the
 *    directory again in the child.
 */
#ifndef MQLOG_H
#define MQLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MQLOG_API __attribute__((visibility("default")))
#else
#define MQLOG_API
#endif

#define MQLOG_VERSION_MAJOR 0
#define MQLOG_VERSION_MINOR 1
#define MQLOG_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The error table: name, code, message.  Codes live far below the errno
 * range so that a negated errno can be returned unchanged beside them.
 */
#define MQLOG_ERROR_MAP(X)                                                     \
	X(EINVAL, -30601, "invalid argument")                                  \
	X(ENOENT, -30602, "no such topic, partition or file")                  \
	X(EEXIST, -30603, "already exists")                                    \
	X(ETOOBIG, -30604, "record or batch too large")                        \
	X(ECORRUPT, -30605, "data corruption detected")                        \
	X(EIO, -30606, "input/output error")                                   \
	X(EFULL, -30607, "topic is full")                                      \
	X(EFAILED, -30608,                                                     \
	  "partition is fail-stopped after a sync error; reopen to recover")   \
	X(ENOMEM, -30609, "out of memory")                                     \
	X(ETIMEDOUT, -30610, "timed out")                                      \
	X(ERANGE, -30611, "offset out of range")                               \
	X(EBUSY, -30612, "resource busy")                                      \
	X(ERDONLY, -30613, "opened read-only")                                 \
	X(EVERSION, -30614, "unsupported format version")                      \
	X(EDELETED, -30615, "topic was deleted")

enum mqlog_error {
	MQLOG_OK = 0,
#define MQLOG_ERROR_ENUM_(name, code, msg) MQLOG_##name = code,
	MQLOG_ERROR_MAP(MQLOG_ERROR_ENUM_)
#undef MQLOG_ERROR_ENUM_
};

/*
 * mqlog_strerror - a static description of an error code.
 *
 * Accepts 0, any MQLOG_E* code and any negated errno value.  The returned
 * string is static and must not be freed.  Thread-safe.
 */
MQLOG_API const char *mqlog_strerror(int rc);

/*
 * mqlog_errname - the symbolic name of an error code ("MQLOG_ECORRUPT",
 * "ENOSPC", ...).  Static string; thread-safe.
 */
MQLOG_API const char *mqlog_errname(int rc);

/*
 * mqlog_errmsg - the message of the last failed call made by this thread.
 *
 * The message names the file, offset or argument involved, e.g.
 * "topics/orders/0/00000000000000000000.seg: batch at byte 4096: body
 * checksum mismatch".  @db may be NULL (the message is per thread, so a
 * failed mqlog_open() has one too).  The string is owned by the library and
 * stays valid until the next failing call in this thread.  Never NULL.
 */
struct mqlog;
MQLOG_API const char *mqlog_errmsg(const struct mqlog *db);

/* ------------------------------------------------------------------------ */
/* Basic types                                                              */
/* ------------------------------------------------------------------------ */

typedef struct mqlog mqlog;               /* an open data directory */
typedef struct mqlog_topic mqlog_topic;   /* an open topic */
typedef struct mqlog_reader mqlog_reader; /* a cursor over one partition */

/*
 * A run of bytes.  data == NULL means "null" (a null key), which differs
 * from an empty value (data != NULL, len == 0).
 */
typedef struct mqlog_bytes {
	const void *data; /* first byte, or NULL for null */
	size_t len;       /* number of bytes */
} mqlog_bytes;

/* One record header: a key (never null) and a value (may be null). */
typedef struct mqlog_header {
	mqlog_bytes key;
	mqlog_bytes value;
} mqlog_header;

/* Ask the library to stamp a record with the current time at append. */
#define MQLOG_TIMESTAMP_NOW INT64_MIN

/* A record to append. */
typedef struct mqlog_msg {
	mqlog_bytes key;              /* null key: data == NULL */
	mqlog_bytes value;            /* null value: data == NULL */
	const mqlog_header *headers;  /* header_count headers, or NULL */
	size_t header_count;          /* number of headers */
	int64_t timestamp;            /* ms since the epoch, or MQLOG_TIMESTAMP_NOW */
} mqlog_msg;

/*
 * A record handed out by a reader.  key, value and headers_raw point into
 * the memory-mapped segment (zero copy); see mqlog_reader_next() for how
 * long they stay valid.
 */
typedef struct mqlog_record {
	uint32_t partition;      /* partition the record lives in */
	uint64_t offset;         /* its offset */
	int64_t timestamp;       /* ms since the epoch */
	mqlog_bytes key;         /* data == NULL for a null key */
	mqlog_bytes value;       /* data == NULL for a null value */
	uint32_t header_count;   /* number of headers */
	const void *headers_raw; /* encoded headers; decode with mqlog_record_headers() */
	size_t headers_raw_len;  /* bytes at headers_raw */
} mqlog_record;

/*
 * mqlog_record_headers - decode the headers of @rec into @out.
 *
 * Decodes at most @max headers; returns the number decoded (which is
 * min(rec->header_count, max)), or MQLOG_ECORRUPT.  The decoded byte
 * runs point into the same memory as the record and share its lifetime.
 * Thread-safe.
 */
MQLOG_API int mqlog_record_headers(const mqlog_record *rec, mqlog_header *out,
				   size_t max);

/* ------------------------------------------------------------------------ */
/* Opening a data directory                                                 */
/* ------------------------------------------------------------------------ */

#define MQLOG_OPEN_CREATE 0x1u /* create the directory if it does not exist */
#define MQLOG_OPEN_RDONLY 0x2u /* read only: appends and changes fail (MQLOG_ERDONLY) */

/*
 * Called when a partition's usage (records against max_messages, bytes
 * against retention_bytes, whichever is higher) rises to the watermark,
 * from the thread whose append crossed it.  It fires once per crossing: the
 * usage must fall below the watermark before it fires again.  It must not
 * call back into the library for the same topic.
 */
typedef void (*mqlog_watermark_fn)(void *arg, const char *topic,
				   uint32_t partition, double usage);

typedef struct mqlog_options {
	unsigned flags;         /* MQLOG_OPEN_* */
	uint64_t map_size;      /* initial LMDB map size in bytes (grows on demand) */
	uint32_t max_open_segments; /* per-process cache of open sealed segments (reserved) */
	uint32_t maintenance_ms;    /* run retention in a background thread this
				     * often (ms); 0 (default): only on append
				     * and mqlog_maintain() */
	double watermark;           /* usage fraction for on_watermark; default 0.8 */
	mqlog_watermark_fn on_watermark; /* NULL: none */
	void *watermark_arg;        /* passed to on_watermark */
} mqlog_options;

/* mqlog_options_init - fill @opts with the defaults (flags CREATE, 64 MiB map). */
MQLOG_API void mqlog_options_init(mqlog_options *opts);

/*
 * mqlog_open - open (or create) the data directory @path.
 *
 * @opts may be NULL for the defaults.  The first process to open a directory
 * after a crash or a reboot recovers each partition when it is first used
 * (torn tails are truncated, derived indexes caught up); opening is O(1) in
 * the number of topics and segments.
 *
 * Returns 0 and stores a handle in *out, or an error (MQLOG_EINVAL for a bad
 * path, MQLOG_ENOENT when the directory is missing and CREATE is not set,
 * -EACCES / -EROFS / MQLOG_ERDONLY for a directory that cannot be written,
 * MQLOG_EVERSION for a directory from an incompatible version).
 *
 * Opening the same directory twice in one process returns the same
 * underlying environment (LMDB forbids two environments on one file in a
 * process); each handle must be closed.  Thread-safe.
 */
MQLOG_API int mqlog_open(const char *path, const mqlog_options *opts,
			 mqlog **out);

/*
 * mqlog_close - flush derived indexes, close everything.  Topic handles and
 * readers of @db must be closed first.  NULL is a harmless no-op.
 */
MQLOG_API void mqlog_close(mqlog *db);

/*
 * mqlog_sync - make every record appended so far through @db durable
 * (fdatasync of every dirty segment) and write the buffered derived index
 * entries.  Thread-safe.
 */
MQLOG_API int mqlog_sync(mqlog *db);

/* ------------------------------------------------------------------------ */
/* Topics                                                                   */
/* ------------------------------------------------------------------------ */

enum mqlog_sync_policy {
	MQLOG_SYNC_DEFAULT = -1, /* use the topic's policy (append only) */
	MQLOG_SYNC_NONE = 0,     /* page cache only: survives a process crash */
	MQLOG_SYNC_INTERVAL = 1, /* background fdatasync every sync_interval_ms */
	MQLOG_SYNC_ALWAYS = 2,   /* fdatasync before the append returns */
};

enum mqlog_full_policy {
	MQLOG_FULL_DROP_OLDEST = 0, /* advance the log start */
	MQLOG_FULL_REJECT = 1,      /* MQLOG_EFULL to the producer */
	MQLOG_FULL_BLOCK = 2,       /* producer waits for space */
};

#define MQLOG_UNLIMITED (-1)
#define MQLOG_MAX_PARTITIONS 100000u
#define MQLOG_TOPIC_NAME_MAX 249

typedef struct mqlog_topic_config {
	uint32_t partitions;           /* 1..MQLOG_MAX_PARTITIONS; default 1 */
	uint64_t segment_bytes;        /* roll size; >= 4096, default 1 GiB */
	int sync;                      /* enum mqlog_sync_policy; default NONE */
	uint32_t sync_interval_ms;     /* INTERVAL period; default 1000 */
	int64_t retention_ms;          /* MQLOG_UNLIMITED or ms: sealed segments whose
					* newest record is older are deleted */
	int64_t retention_bytes;       /* MQLOG_UNLIMITED or bytes per partition */
	int64_t max_messages;          /* MQLOG_UNLIMITED or records per partition
					* (exact: the log start moves) */
	int full_policy;               /* enum mqlog_full_policy, applied when a
					* byte or record limit is reached;
					* default DROP_OLDEST */
	uint32_t max_record_bytes;     /* largest encoded record; default 1 MiB */
	uint32_t index_interval_bytes; /* log bytes between index entries; default 4096 */
	uint32_t full_block_ms;        /* BLOCK: longest wait for space; default 30000 */
} mqlog_topic_config;

/* mqlog_topic_config_init - fill @cfg with the defaults listed above. */
MQLOG_API void mqlog_topic_config_init(mqlog_topic_config *cfg);

/*
 * mqlog_topic_name_valid - 1 when @name is a valid topic name: 1..249
 * characters of [A-Za-z0-9._-], not "." or "..".  Thread-safe.
 */
MQLOG_API int mqlog_topic_name_valid(const char *name);

/*
 * mqlog_topic_create - create topic @name with @cfg (NULL = defaults).
 *
 * Crash-safe: after a crash the topic either exists whole or not at all.
 * Returns MQLOG_EINVAL (bad name or configuration; nothing is created),
 * MQLOG_EEXIST, MQLOG_ERDONLY, or an I/O error.  Thread-safe.
 */
MQLOG_API int mqlog_topic_create(mqlog *db, const char *name,
				 const mqlog_topic_config *cfg);

/*
 * mqlog_topic_delete - delete topic @name: its files and its metadata.
 *
 * Crash-safe: a deletion interrupted by a crash is completed on the next
 * open.  Fails with MQLOG_EBUSY while this process has the topic open.
 * Other processes that still have it open get MQLOG_EDELETED from appends.
 * Thread-safe.
 */
MQLOG_API int mqlog_topic_delete(mqlog *db, const char *name);

/*
 * mqlog_topic_list - the names of all topics, sorted.  *names is an array
 * of *count strings allocated by the library; release it with
 * mqlog_list_free().  Thread-safe.
 */
MQLOG_API int mqlog_topic_list(mqlog *db, char ***names, size_t *count);
MQLOG_API void mqlog_list_free(char **names, size_t count);

/*
 * mqlog_topic_open - open topic @name for appending and reading.
 *
 * The handle is thread-safe and must be closed with mqlog_topic_close()
 * before @db is closed.  Returns MQLOG_ENOENT for an unknown topic.
 */
MQLOG_API int mqlog_topic_open(mqlog *db, const char *name,
			       mqlog_topic **out);
MQLOG_API void mqlog_topic_close(mqlog_topic *t);

/* mqlog_topic_config_get - the topic's configuration.  Thread-safe. */
MQLOG_API void mqlog_topic_config_get(const mqlog_topic *t,
				      mqlog_topic_config *cfg);
/* mqlog_topic_name - the topic's name, owned by the handle. */
MQLOG_API const char *mqlog_topic_name(const mqlog_topic *t);
/* mqlog_topic_partitions - the number of partitions. */
MQLOG_API uint32_t mqlog_topic_partitions(const mqlog_topic *t);

/*
 * mqlog_partition_for_key - the default partitioner:
 * XXH3_64bits(key, len) with seed 0, modulo @partitions.  A key always maps
 * to the same partition, which gives per-key order.  @partitions must be > 0.
 */
MQLOG_API uint32_t mqlog_partition_for_key(const void *key, size_t len,
					   uint32_t partitions);

typedef struct mqlog_partition_info {
	uint64_t start_offset;   /* first readable offset */
	uint64_t end_offset;     /* next offset to be assigned (log end) */
	uint64_t durable_offset; /* offsets below it are known synced */
	uint64_t segments;       /* number of segment files */
	uint64_t bytes;          /* bytes in all segments */
	uint64_t active_base;    /* base offset of the active segment */
	int failed;              /* 1 when fail-stopped after a sync error */
	double usage;            /* records/max_messages or bytes/retention_bytes,
				  * the higher; 0 without limits */
} mqlog_partition_info;

/* mqlog_partition_stat - live state of one partition.  Thread-safe. */
MQLOG_API int mqlog_partition_stat(mqlog_topic *t, uint32_t partition,
				   mqlog_partition_info *info);

/* ------------------------------------------------------------------------ */
/* Appending                                                                */
/* ------------------------------------------------------------------------ */

/*
 * mqlog_append - append @count records to @partition as one batch.
 *
 * The records get the dense offsets base .. base + count - 1; the base is
 * stored in *base_offset (may be NULL).  The batch is written whole or not
 * at all: a reader never sees part of it.  @sync is MQLOG_SYNC_DEFAULT (the
 * topic's policy) or a policy for this call; with MQLOG_SYNC_ALWAYS the call
 * returns only once the batch is on stable storage, and concurrent callers
 * (threads or processes) share one fdatasync (group commit).
 *
 * Limits: when the batch would take the partition past max_messages or
 * retention_bytes, the topic's full policy decides: DROP_OLDEST moves the
 * log start (and deletes whole segments below it), REJECT returns
 * MQLOG_EFULL, BLOCK waits up to full_block_ms for mqlog_partition_release()
 * (from any process) and then returns MQLOG_EFULL.
 *
 * Errors (nothing is written on any of them): MQLOG_EINVAL (bad partition,
 * count 0), MQLOG_ETOOBIG (a record over max_record_bytes, named by index),
 * MQLOG_EFULL (see Limits),
 * MQLOG_ERDONLY, MQLOG_EFAILED (partition fail-stopped), MQLOG_EDELETED;
 * I/O errors (-ENOSPC, -EIO): the batch is not acknowledged.  A sync failure
 * fail-stops the partition: this and every later append return an error
 * until the directory is reopened and recovered.
 *
 * Thread-safe; appends to different partitions run in parallel.
 */
MQLOG_API int mqlog_append(mqlog_topic *t, uint32_t partition,
			   const mqlog_msg *msgs, size_t count, int sync,
			   uint64_t *base_offset);

/*
 * mqlog_partition_release - move the log start of @partition up to
 * @offset: records below it are never returned again, and segments wholly
 * below it are deleted (readers that have one mapped keep valid memory and
 * get MQLOG_ERANGE when they move on).  What Kafka calls DeleteRecords; with
 * the REJECT and BLOCK policies it is how consumers make room, and producers
 * blocked on the partition are woken.  Durable when it returns.  An offset
 * at or below the start is a no-op; above the end, MQLOG_ERANGE.
 * Thread-safe.
 */
MQLOG_API int mqlog_partition_release(mqlog_topic *t, uint32_t partition,
				      uint64_t offset);

/*
 * mqlog_maintain - apply retention now to @topic (NULL: every topic):
 * delete sealed segments older than retention_ms or beyond
 * retention_bytes (DROP_OLDEST), and segments wholly below the log start.
 * Appends apply the record and byte limits as they go; age needs this call
 * or the maintenance_ms thread.  Thread-safe.
 */
MQLOG_API int mqlog_maintain(mqlog *db, const char *topic);

/*
 * mqlog_topic_sync - make everything appended to @t durable now.
 * Thread-safe.
 */
MQLOG_API int mqlog_topic_sync(mqlog_topic *t);

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

#define MQLOG_OFFSET_EARLIEST UINT64_C(0xFFFFFFFFFFFFFFFE)
#define MQLOG_OFFSET_LATEST UINT64_C(0xFFFFFFFFFFFFFFFF)

/*
 * mqlog_reader_open - a cursor over @partition of @t, positioned at the
 * partition's start.  A reader is used by one thread at a time; many
 * readers may read one partition concurrently, in any process.
 */
MQLOG_API int mqlog_reader_open(mqlog_topic *t, uint32_t partition,
				mqlog_reader **out);
MQLOG_API void mqlog_reader_close(mqlog_reader *r);

/*
 * mqlog_reader_seek - position at @offset, MQLOG_OFFSET_EARLIEST or
 * MQLOG_OFFSET_LATEST (the log end: only records appended later are read).
 * Returns MQLOG_ERANGE when @offset is below the start or above the end;
 * the position is then unchanged.
 */
MQLOG_API int mqlog_reader_seek(mqlog_reader *r, uint64_t offset);

/*
 * mqlog_reader_seek_time - position at the first record whose timestamp is
 * >= @timestamp_ms (the log end when there is none).  Uses the sparse time
 * index, then scans.
 */
MQLOG_API int mqlog_reader_seek_time(mqlog_reader *r, int64_t timestamp_ms);

/* mqlog_reader_position - the offset the next record will have. */
MQLOG_API uint64_t mqlog_reader_position(const mqlog_reader *r);

/*
 * mqlog_reader_next - read the next record into *rec.
 *
 * Returns 1 with a record, 0 when the reader is at the log end, or an error:
 * MQLOG_ECORRUPT when the next batch fails validation (the message names the
 * segment file and byte position; the reader stays before it, so no record
 * of a corrupt batch is ever returned), MQLOG_ERANGE when retention removed
 * the position.  Every batch is validated (header and body checksums) before
 * its first record is handed out.
 *
 * The byte runs of *rec point into the memory-mapped segment; they stay
 * valid until the next call on this reader (next, read, seek, close).
 */
MQLOG_API int mqlog_reader_next(mqlog_reader *r, mqlog_record *rec);

/*
 * mqlog_reader_read - read up to @max records into @recs; *n gets the number
 * read (0 at the log end).  Same validity and errors as mqlog_reader_next();
 * all records of one call stay valid until the next call on this reader.
 * When an error follows some records, those records are returned with 0 and
 * the error comes from the next call.
 */
MQLOG_API int mqlog_reader_read(mqlog_reader *r, mqlog_record *recs,
				size_t max, size_t *n);

/*
 * mqlog_reader_wait - block until the partition's end moves past the
 * reader's position, or @timeout_ms passes (-1 waits forever).  Woken by
 * appends from any process through a futex on the partition's shared state.
 * Returns 0 when records are available, MQLOG_ETIMEDOUT otherwise.
 */
MQLOG_API int mqlog_reader_wait(mqlog_reader *r, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Inspection, verification and repair                                      */
/* ------------------------------------------------------------------------ */

/* One batch as seen by a scan. */
typedef struct mqlog_batch_info {
	const char *file;       /* segment file path */
	uint64_t position;      /* byte position of the batch in the file */
	uint32_t length;        /* bytes of the whole batch */
	uint64_t base_offset;   /* offset of the first record */
	uint32_t record_count;  /* records in the batch */
	int64_t first_timestamp;
	int64_t max_timestamp;
	uint16_t flags;
	uint64_t producer_id;
	uint32_t base_sequence;
	uint64_t header_checksum;
	uint64_t body_checksum;
} mqlog_batch_info;

/*
 * Scan callbacks: on_batch for each valid batch, then on_record for each of
 * its records.  Returning non-zero stops the scan, which then returns that
 * value.
 */
typedef struct mqlog_scan_ops {
	int (*on_batch)(void *arg, const mqlog_batch_info *batch);
	int (*on_record)(void *arg, const mqlog_batch_info *batch,
			 const mqlog_record *rec);
} mqlog_scan_ops;

/*
 * mqlog_scan_file - scan the segment file @path from its start, validating
 * each batch.  Stops at the first invalid batch and returns MQLOG_ECORRUPT
 * (message: file, byte position, reason), or at a clean end with 0.
 * Bytes after the last batch that are all zero count as a clean end
 * (preallocated space).  Needs no open directory.
 */
MQLOG_API int mqlog_scan_file(const char *path, const mqlog_scan_ops *ops,
			      void *arg);

/*
 * mqlog_scan_partition - scan every segment of one partition in order
 * (published records only), as mqlog_scan_file().
 */
MQLOG_API int mqlog_scan_partition(mqlog_topic *t, uint32_t partition,
				   const mqlog_scan_ops *ops, void *arg);

typedef struct mqlog_verify_stats {
	uint64_t topics;        /* topics checked */
	uint64_t partitions;    /* partitions checked */
	uint64_t segments;      /* segment files checked */
	uint64_t batches;       /* valid batches */
	uint64_t records;       /* valid records */
	uint64_t bytes;         /* bytes checked */
	uint64_t index_entries; /* index entries checked against the log */
	uint64_t problems;      /* problems found */
} mqlog_verify_stats;

/* Called once per problem found by mqlog_verify(). */
typedef void (*mqlog_problem_fn)(void *arg, const char *topic,
				 uint32_t partition, const char *file,
				 uint64_t position, const char *what);

/*
 * mqlog_verify - check every segment of @topic (NULL: all topics): each
 * batch's checksums, dense offsets within and across segments, and every
 * derived index entry against the log.  Changes nothing.  Returns 0 when
 * clean, MQLOG_ECORRUPT when problems were found (each reported through
 * @problem, which may be NULL), or another error.  @stats may be NULL.
 */
MQLOG_API int mqlog_verify(mqlog *db, const char *topic,
			   mqlog_problem_fn problem, void *arg,
			   mqlog_verify_stats *stats);

typedef struct mqlog_recover_stats {
	uint64_t partitions;       /* partitions recovered */
	uint64_t truncated_bytes;  /* torn-tail bytes removed */
	uint64_t index_entries;    /* index entries rewritten */
} mqlog_recover_stats;

/*
 * mqlog_recover - truncate torn tails of active segments and rebuild all
 * derived indexes of @topic (NULL: all) from the segments.  Corruption
 * inside sealed data is not removed: it is reported with MQLOG_ECORRUPT.
 * Must not run while other processes append.  @stats may be NULL.
 */
MQLOG_API int mqlog_recover(mqlog *db, const char *topic,
			    mqlog_recover_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* MQLOG_H */
