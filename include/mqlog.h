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
#define MQLOG_ERROR_MAP(X)                                                   \
	X(EINVAL, -30601, "invalid argument")                                \
	X(ENOENT, -30602, "no such topic, partition or file")                \
	X(EEXIST, -30603, "already exists")                                  \
	X(ETOOBIG, -30604, "record or batch too large")                      \
	X(ECORRUPT, -30605, "data corruption detected")                      \
	X(EIO, -30606, "input/output error")                                 \
	X(EFULL, -30607, "topic is full")                                    \
	X(EFAILED, -30608,                                                   \
	  "partition is fail-stopped after a sync error; reopen to recover") \
	X(ENOMEM, -30609, "out of memory")                                   \
	X(ETIMEDOUT, -30610, "timed out")                                    \
	X(ERANGE, -30611, "offset out of range")                             \
	X(EBUSY, -30612, "resource busy")                                    \
	X(ERDONLY, -30613, "opened read-only")                               \
	X(EVERSION, -30614, "unsupported format version")                    \
	X(EDELETED, -30615, "topic was deleted")                             \
	X(ECLOSED, -30616, "handle is closed")                               \
	X(ESTALE, -30617,                                                    \
	  "stale consumer group member: removed from the group, or the "     \
	  "partition was reassigned")

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

typedef struct mqlog mqlog;		  /* an open data directory */
typedef struct mqlog_topic mqlog_topic;	  /* an open topic */
typedef struct mqlog_reader mqlog_reader; /* a cursor over one partition */

/*
 * A run of bytes.  data == NULL means "null" (a null key), which differs
 * from an empty value (data != NULL, len == 0).
 */
typedef struct mqlog_bytes {
	const void *data; /* first byte, or NULL for null */
	size_t len;	  /* number of bytes */
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
	mqlog_bytes key;	     /* null key: data == NULL */
	mqlog_bytes value;	     /* null value: data == NULL */
	const mqlog_header *headers; /* header_count headers, or NULL */
	size_t header_count;	     /* number of headers */
	int64_t timestamp; /* ms since the epoch, or MQLOG_TIMESTAMP_NOW */
} mqlog_msg;

/*
 * A record handed out by a reader.  key, value and headers_raw point into
 * the memory-mapped segment (zero copy); see mqlog_reader_next() for how
 * long they stay valid.
 */
typedef struct mqlog_record {
	uint32_t partition;	 /* partition the record lives in */
	uint64_t offset;	 /* its offset */
	int64_t timestamp;	 /* ms since the epoch */
	mqlog_bytes key;	 /* data == NULL for a null key */
	mqlog_bytes value;	 /* data == NULL for a null value */
	uint32_t header_count;	 /* number of headers */
	const void *headers_raw; /* encoded headers; decode with
				    mqlog_record_headers() */
	size_t headers_raw_len;	 /* bytes at headers_raw */
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
#define MQLOG_OPEN_RDONLY \
	0x2u /* read only: appends and changes fail (MQLOG_ERDONLY) */

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
	unsigned flags;	   /* MQLOG_OPEN_* */
	uint64_t map_size; /* initial LMDB map size in bytes (grows on demand)
			    */
	uint32_t max_open_segments; /* per-process cache of open sealed segments
				       (reserved) */
	uint32_t maintenance_ms;    /* run retention in a background thread this
				     * often (ms); 0 (default): only on append
				     * and mqlog_maintain() */
	double watermark; /* usage fraction for on_watermark; default 0.8 */
	mqlog_watermark_fn on_watermark; /* NULL: none */
	void *watermark_arg;		 /* passed to on_watermark */
	uint32_t wait_spin_us; /* mqlog_reader_wait() and a consumer's poll
				* watch the log this long (µs) before they
				* sleep in the kernel: a record that
				* arrives meanwhile is seen in ~1 µs
				* rather than after a futex wake-up
				* (tens of µs at the tail).  Costs CPU
				* only while waiting.  Default 50; 0:
				* sleep at once */
} mqlog_options;

/* mqlog_options_init - fill @opts with the defaults (flags CREATE, 64 MiB map).
 */
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
	MQLOG_SYNC_NONE = 0,	 /* page cache only: survives a process crash */
	MQLOG_SYNC_INTERVAL = 1, /* background fdatasync every sync_interval_ms
				  */
	MQLOG_SYNC_ALWAYS = 2,	 /* fdatasync before the append returns */
};

enum mqlog_full_policy {
	MQLOG_FULL_DROP_OLDEST = 0, /* advance the log start */
	MQLOG_FULL_REJECT = 1,	    /* MQLOG_EFULL to the producer */
	MQLOG_FULL_BLOCK = 2,	    /* producer waits for space */
};

#define MQLOG_UNLIMITED	     (-1)
#define MQLOG_MAX_PARTITIONS 100000u
#define MQLOG_TOPIC_NAME_MAX 249

typedef struct mqlog_topic_config {
	uint32_t partitions;	   /* 1..MQLOG_MAX_PARTITIONS; default 1 */
	uint64_t segment_bytes;	   /* roll size; >= 4096, default 1 GiB */
	int sync;		   /* enum mqlog_sync_policy; default NONE */
	uint32_t sync_interval_ms; /* INTERVAL period; default 1000 */
	int64_t retention_ms;	 /* MQLOG_UNLIMITED or ms: sealed segments whose
				  * newest record is older are deleted */
	int64_t retention_bytes; /* MQLOG_UNLIMITED or bytes per partition */
	int64_t max_messages;	 /* MQLOG_UNLIMITED or records per partition
				  * (exact: the log start moves) */
	int full_policy;	 /* enum mqlog_full_policy, applied when a
				  * byte or record limit is reached;
				  * default DROP_OLDEST */
	uint32_t max_record_bytes; /* largest encoded record; default 1 MiB */
	uint32_t index_interval_bytes; /* log bytes between index entries;
					  default 4096 */
	uint32_t full_block_ms;	 /* BLOCK: longest wait for space; default 30000
				  */
	int interest;		 /* 1: interest retention (work queue):
				  * records every registered consumer
				  * group committed past are freed; see
				  * mqlog_partition_interest().  0
				  * (default): off */
	uint32_t max_attempts;	 /* deliveries of a record to a group before
				  * mqlog_consumer_nack() sends it to the
				  * dead-letter topic <topic>.dlq instead of
				  * <topic>.retry; 1..1000, default 5 */
	uint32_t retry_delay_ms; /* delay of a nack that asks for the default
				  * (MQLOG_NACK_DEFAULT_DELAY); <= 86400000,
				  * default 1000 */
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
MQLOG_API int mqlog_topic_open(mqlog *db, const char *name, mqlog_topic **out);
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
	uint64_t start_offset;	 /* first readable offset */
	uint64_t end_offset;	 /* next offset to be assigned (log end) */
	uint64_t durable_offset; /* offsets below it are known synced */
	uint64_t segments;	 /* number of segment files */
	uint64_t bytes;		 /* bytes in all segments */
	uint64_t active_base;	 /* base offset of the active segment */
	int failed;		 /* 1 when fail-stopped after a sync error */
	double usage; /* records/max_messages or bytes/retention_bytes,
		       * the higher; 0 without limits */
} mqlog_partition_info;

/* mqlog_partition_stat - live state of one partition.  Thread-safe. */
MQLOG_API int mqlog_partition_stat(mqlog_topic *t, uint32_t partition,
				   mqlog_partition_info *info);

/*
 * Interest retention (mqlog_topic_config.interest = 1).
 *
 * A consumer group is registered on a topic from its first join or commit
 * until mqlog_group_delete() removes it.  The interest floor of a
 * partition is the lowest committed offset over the registered groups (a
 * group that never committed the partition holds it at the log start).
 * The log start moves up to the floor, exactly, and whole segments below
 * it are deleted: when a commit moves it (the commit of the group that
 * held it), at every segment roll, and by mqlog_maintain().  With no group
 * registered nothing is freed.  Records not yet committed by every group
 * are never freed by interest retention; the topic's other limits
 * (max_messages, retention_bytes, retention_ms) still apply, so set the
 * REJECT or BLOCK policy to keep them from freeing unconsumed records.
 * Across processes: every process applies the same rule to the groups in
 * the shared index, and after a crash the start is recomputed from the
 * durable committed offsets.
 */
typedef struct mqlog_interest_info {
	size_t groups;	 /* registered groups (0: nothing is freed) */
	uint64_t floor;	 /* lowest committed offset over them, clamped
			  * to the log end; the log start when none */
	char group[256]; /* the group at the floor ("" when none);
			  * the one to delete if it is dead */
} mqlog_interest_info;

/*
 * mqlog_partition_interest - the interest floor of @partition of @t and
 * the group holding it, from the committed offsets (works whether or not
 * the topic has interest retention on).  Changes nothing.  Thread-safe.
 */
MQLOG_API int mqlog_partition_interest(mqlog_topic *t, uint32_t partition,
				       mqlog_interest_info *info);

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
 * log start (and deletes whole segments below it: under max_messages the
 * db's background thread does, within about 50 ms, or
 * mqlog_maintain() or closing the topic), REJECT returns
 * MQLOG_EFULL, BLOCK waits up to full_block_ms for mqlog_partition_release()
 * or, under interest retention, a group commit that frees records (from any
 * process) and then returns MQLOG_EFULL.
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
 * below it are deleted (a segment that a live reader of any process has
 * mapped, or any later one, is deleted once the reader has moved on; the
 * reader gets MQLOG_ERANGE for the released records).  What Kafka calls
 * DeleteRecords; with the REJECT and BLOCK policies it is how consumers make
 * room, and producers blocked on the partition are woken.  Durable when it
 * returns.  An offset at or below the start is a no-op; above the end,
 * MQLOG_ERANGE.  Thread-safe.
 */
MQLOG_API int mqlog_partition_release(mqlog_topic *t, uint32_t partition,
				      uint64_t offset);

/*
 * mqlog_maintain - apply retention now to @topic (NULL: every topic):
 * delete sealed segments older than retention_ms or beyond
 * retention_bytes (DROP_OLDEST), move the start up to the interest floor
 * (interest retention), and delete segments wholly below the log start
 * that no live reader holds.
 * Appends apply the record and byte limits as they go, and the age limit
 * each time a segment rolls; this call (or the maintenance_ms thread)
 * applies age to partitions that stopped rolling.  Thread-safe.
 */
MQLOG_API int mqlog_maintain(mqlog *db, const char *topic);

/*
 * mqlog_topic_sync - make everything appended to @t durable now.
 * Thread-safe.
 */
MQLOG_API int mqlog_topic_sync(mqlog_topic *t);

/* ------------------------------------------------------------------------ */
/* Producers                                                                */
/* ------------------------------------------------------------------------ */

/*
 * A producer takes records one at a time, from any number of threads, and
 * appends them to the partitions of a topic in batches.
 *
 *  - Partitioning.  A record goes to the partition its caller names, or else
 *    to the one the producer's partitioner picks.  A keyed record goes to a
 *    hash of its key modulo the partition count, so a key always lands on
 *    the same partition and keeps its order.  A record with a null key goes
 *    to the "sticky" partition, which moves to another partition (chosen at
 *    random) each time a batch of it is sealed: null-key records fill whole
 *    batches and still spread over every partition (Kafka's sticky
 *    partitioner, KIP-480).
 *  - Batching.  Each record is encoded straight into the open batch of its
 *    partition, memory that the producer owns and reuses (no allocation
 *    per record).  A batch is sealed when it holds batch_records records or
 *    about batch_bytes bytes, and then appended at once, whole, by the
 *    thread that filled it; a batch that is not full goes when a
 *    synchronous caller waits for it, when it has held asynchronous records
 *    for linger_ms, or on flush.  A partition has at most one batch being
 *    appended at a time; records that arrive meanwhile gather in the next
 *    one, so batches grow with the load, and callers waiting for the same
 *    batch share its write and its fdatasync (group commit).
 *  - Order.  The records of one partition are appended in the order in
 *    which their produce calls entered the producer.  Records that one
 *    thread produces with one key (or to one partition) keep its order.
 *  - Outcome.  Every record handed to the producer gets exactly one outcome:
 *    an offset, or an error.  mqlog_produce() waits for it and returns it;
 *    mqlog_produce_async() reports it through the delivery callback, and
 *    flush and close report failures too.  There is no automatic retry: a
 *    record whose batch failed is not in the log.
 *  - Timestamps.  A record keeps the timestamp its caller gives; one with
 *    MQLOG_TIMESTAMP_NOW is stamped by the library with the wall clock when
 *    its batch is appended, as with mqlog_append().  (A batch holds records
 *    of one kind: a record of the other kind starts a new batch.)
 *
 * A producer works within one process.  Producers in several processes may
 * share a topic: their batches are appended whole and never interleave,
 * offsets stay dense, and each keeps its own per-key order.
 */
typedef struct mqlog_producer mqlog_producer;

/* As a partition argument: let the producer's partitioner choose. */
#define MQLOG_PARTITION_AUTO UINT32_MAX

enum mqlog_partitioner {
	/*
	 * The default.  Keyed records: XXH3_64bits(key bytes) with seed 0
	 * (xxHash 0.8, the 64-bit XXH3 hash), taken modulo the partition
	 * count as an unsigned 64-bit number: mqlog_partition_for_key().
	 * Null keys: the sticky partition.
	 */
	MQLOG_PARTITIONER_XXH3 = 0,
	/*
	 * Kafka's default partitioner, so that a key lands on the partition a
	 * Kafka client would choose: mqlog_partition_for_key_murmur2().
	 * Null keys: the sticky partition.
	 */
	MQLOG_PARTITIONER_MURMUR2 = 1,
	/* options.partition_fn decides, for every record (null keys too). */
	MQLOG_PARTITIONER_CUSTOM = 2,
};

/*
 * A custom partitioner: returns the partition (0 .. @partitions - 1) for
 * @msg, or a negative error code, which the produce call then returns with
 * the record not produced.  A value out of range fails the call with
 * MQLOG_EINVAL.  Called in the producing thread, with no lock held, for each
 * record produced with MQLOG_PARTITION_AUTO; it must be thread-safe when the
 * producer is shared by threads, and must not call back into the producer.
 */
typedef int (*mqlog_partitioner_fn)(void *arg, const mqlog_msg *msg,
				    uint32_t partitions);

/* The outcome of one record produced with mqlog_produce_async(). */
typedef struct mqlog_delivery {
	int rc;		    /* 0, or why the record is not in the log */
	uint32_t partition; /* the partition the record went (or was to go) to
			     */
	uint64_t offset;    /* its offset when rc == 0, else 0 */
	void *opaque;	    /* as given to mqlog_produce_async() */
	const char *errmsg; /* NULL when rc == 0, else the message (names the
			       topic and partition); valid during the call */
} mqlog_delivery;

/*
 * The delivery callback: called exactly once for each record produced with
 * mqlog_produce_async(), success or failure, always from the producer's
 * own background thread (never from inside a produce call, so it may take
 * locks that the producing threads hold while they produce), one call at a
 * time, and for the records of one partition in offset order.  Reports
 * come within about a millisecond of the append (they are handed over in
 * bulk), and flush and close return only after the reports of their
 * records.  It may call mqlog_produce() and mqlog_produce_async() on the
 * same producer, but not mqlog_producer_flush() or mqlog_producer_close()
 * (they fail with MQLOG_EBUSY there).  While it runs, no other delivery is
 * reported, so it should return quickly.  mqlog_errmsg() in the callback
 * returns the failure's message too.
 */
typedef void (*mqlog_delivery_fn)(void *arg, const mqlog_delivery *d);

typedef struct mqlog_producer_options {
	uint32_t batch_records; /* seal a batch at this many records (1 ..
				   1000000); default 1000 */
	uint32_t batch_bytes;	/* seal a batch at about this many encoded
				   bytes; default 1 MiB.  Lowered to a
				   quarter of the topic's segment_bytes and
				   to half its retention_bytes; batch_records
				   to its max_messages.  A larger record goes
				   alone. */
	uint32_t linger_ms;	/* how long a batch of asynchronous records
				   that is not full waits for more before the
				   background thread appends it (0 ..
				   3600000); default 5, as Kafka's clients.
				   0: at once, which costs a thread wake-up
				   per batch.  Synchronous records never
				   wait: their batch goes as soon as their
				   partition is not busy appending. */
	int sync;		/* MQLOG_SYNC_DEFAULT (the topic's policy) or
				   NONE, INTERVAL, ALWAYS for every batch */
	int partitioner;	/* enum mqlog_partitioner; default XXH3 */
	mqlog_partitioner_fn partition_fn; /* CUSTOM: the function */
	void *partition_arg;		   /* its first argument */
	mqlog_delivery_fn on_delivery;	   /* outcomes of asynchronous records;
					      NULL: none (flush and close still
					      report the first failure) */
	void *delivery_arg;		   /* its first argument */
} mqlog_producer_options;

/* mqlog_producer_options_init - fill @opts with the defaults above. */
MQLOG_API void mqlog_producer_options_init(mqlog_producer_options *opts);

/*
 * mqlog_producer_open - a producer on topic @t with @opts (NULL: the
 * defaults).  @t is borrowed: it must stay open until the producer is
 * freed.  Starts no thread: the background thread (linger timer and
 * delivery callbacks) starts with the first mqlog_produce_async().
 *
 * Returns 0 and stores the handle in *out, or MQLOG_EINVAL (NULL argument,
 * an option out of range, CUSTOM without partition_fn; the message names
 * the option), MQLOG_ERDONLY (directory opened read-only), MQLOG_ENOMEM.
 * Thread-safe.
 */
MQLOG_API int mqlog_producer_open(mqlog_topic *t,
				  const mqlog_producer_options *opts,
				  mqlog_producer **out);

/*
 * mqlog_produce - produce one record and wait for its outcome.
 *
 * @msg is copied before the call returns or waits (its bytes may be reused
 * at once).  @partition is a partition number or MQLOG_PARTITION_AUTO.  The
 * call returns when the record's batch has been appended, and, under sync
 * ALWAYS (the producer's or the topic's), when it is on stable storage.
 * The batch goes as soon as the partition has no other batch of this
 * producer in flight (linger_ms does not apply); callers that wait at the
 * same time share the batch and its fdatasync, and a caller may append
 * the batch holding the others' records.
 *
 * Returns 0 and stores the partition and offset in *partition_out and
 * *offset_out (each may be NULL), or an error: MQLOG_EINVAL (NULL argument,
 * a null key with a length, a null header key, a partition out of range),
 * MQLOG_ETOOBIG (the record alone encodes to more than the topic's
 * max_record_bytes; nothing else is affected), MQLOG_ECLOSED (the producer
 * is closed or closing), the error of a custom partitioner, or the error
 * of the append of the record's batch (MQLOG_EFULL, -ENOSPC, MQLOG_EFAILED,
 * ...), which every record of that batch gets.  After a fatal error (a
 * partition fail-stopped: MQLOG_EFAILED; MQLOG_EDELETED; MQLOG_ERDONLY)
 * the producer fails every later call with that error, the message saying
 * so.  On error *partition_out and *offset_out are left unchanged.
 *
 * Thread-safe: any number of threads may produce through one producer.
 */
MQLOG_API int mqlog_produce(mqlog_producer *p, const mqlog_msg *msg,
			    uint32_t partition, uint32_t *partition_out,
			    uint64_t *offset_out);

/*
 * mqlog_produce_async - produce one record without waiting for its outcome.
 *
 * @msg is copied before the call returns.  The outcome goes to the delivery
 * callback with @opaque (see mqlog_delivery_fn); without a callback, a
 * failure is reported by the next flush or close.  Returns 0 when the
 * record was accepted (its outcome comes later, exactly once), or an error
 * when it was not (then no callback comes for it): MQLOG_EINVAL,
 * MQLOG_ETOOBIG, MQLOG_ECLOSED, a partitioner's error, a fatal error as for
 * mqlog_produce(), or -EAGAIN / MQLOG_ENOMEM when the background thread
 * cannot start.  The call that fills a batch appends it before it returns
 * (the bytes are hot in its cache; no thread hand-off on the hot path),
 * and a call that finds its partition's batch full while another is being
 * appended waits for it (backpressure).  Thread-safe.
 */
MQLOG_API int mqlog_produce_async(mqlog_producer *p, const mqlog_msg *msg,
				  uint32_t partition, void *opaque);

/*
 * mqlog_producer_flush - seal every open batch now (ignoring linger_ms),
 * and wait until every record produced before the call has its outcome and
 * every delivery callback for them has returned.
 *
 * Returns 0 when every asynchronous record whose outcome was reported since
 * the previous flush (or close) was appended, or else the first failure
 * among them (message included); records produced concurrently by other
 * threads may count too.  MQLOG_ECLOSED after close; MQLOG_EBUSY from a
 * delivery callback.  Thread-safe.
 */
MQLOG_API int mqlog_producer_flush(mqlog_producer *p);

/*
 * mqlog_producer_close - stop taking records, flush, and stop the
 * background thread once every delivery callback has been made.
 *
 * Every record produced before close began gets its outcome.  Calls that
 * race with close either get their record in (with an outcome) or fail with
 * MQLOG_ECLOSED; every call after close fails with MQLOG_ECLOSED, so a
 * closed producer can never drop a record silently.  Returns what
 * mqlog_producer_flush() would, MQLOG_ECLOSED when already closed, or
 * MQLOG_EBUSY from a delivery callback.  The handle stays valid (and
 * answers MQLOG_ECLOSED) until mqlog_producer_free().  Thread-safe.
 */
MQLOG_API int mqlog_producer_close(mqlog_producer *p);

/*
 * mqlog_producer_free - close @p if it is still open (ignoring the result)
 * and release it.  Call it once every other thread has returned from its
 * calls on @p; never from a delivery callback.  NULL is a harmless no-op.
 */
MQLOG_API void mqlog_producer_free(mqlog_producer *p);

/*
 * mqlog_murmur2 - Kafka's murmur2 hash of @len bytes at @key (as
 * org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit
 * value; Java's signed int has the same bits.  To reproduce it, with
 * 32-bit unsigned wrap-around arithmetic:
 *
 *     m = 0x5bd1e995, h = 0x9747b28c ^ len
 *     for each whole 4-byte block, little-endian k = b0 | b1<<8 | b2<<16 |
 * b3<<24: k *= m; k ^= k >> 24; k *= m; h *= m; h ^= k tail of len % 4 bytes
 * t0, t1, t2 at the end: 3: h ^= t2 << 16; 2: h ^= t1 << 8; 1: h ^= t0; h *= m
 *         (falling through from 3 to 1; only when the tail is not empty)
 *     h ^= h >> 13; h *= m; h ^= h >> 15
 *
 * For example "21" -> 0xc5f2f8ec (-973932308), "kafka" -> 0xd067cf64,
 * "" -> 0x106e08d9.  Thread-safe.
 */
MQLOG_API uint32_t mqlog_murmur2(const void *key, size_t len);

/*
 * mqlog_partition_for_key_murmur2 - Kafka's partition for a key:
 * (mqlog_murmur2(key) & 0x7fffffff) % @partitions (Kafka's
 * Utils.toPositive, then modulo).  @partitions must be > 0.  Thread-safe.
 */
MQLOG_API uint32_t mqlog_partition_for_key_murmur2(const void *key, size_t len,
						   uint32_t partitions);

/* ------------------------------------------------------------------------ */
/* Routing records by a header                                              */
/* ------------------------------------------------------------------------ */

/*
 * mqlog_record_header - the value of header @key (@key_len bytes) of @rec:
 * its last occurrence, as Kafka's Headers.lastHeader().  Returns 1 and
 * stores the value in *value (pointing into the record's memory, with its
 * lifetime; data == NULL for a null value), 0 when the record has no such
 * header (*value untouched), or MQLOG_ECORRUPT for malformed headers.
 * Thread-safe.
 */
MQLOG_API int mqlog_record_header(const mqlog_record *rec, const void *key,
				  size_t key_len, mqlog_bytes *value);

/* A record handler: returns 0, or an error that the dispatch passes back. */
typedef int (*mqlog_handler_fn)(void *arg, const mqlog_record *rec);

/* One entry of a routing table: records whose header equals @value. */
typedef struct mqlog_route {
	const char *value;	  /* header value to match (bytes of the C
				     string, without its NUL); NULL matches
				     every record: the fallback, put it last */
	mqlog_handler_fn handler; /* called for a matching record */
	void *arg;		  /* its first argument */
} mqlog_route;

/*
 * mqlog_route_record - the "message type -> handler" pattern: find the value
 * of header @header_key (a C string; last occurrence) in @rec and call the
 * handler of the first of the @nroutes @routes whose value equals it
 * byte for byte.  A record without the header, or with a null value,
 * matches only a NULL (fallback) route.
 *
 * Returns what the handler returned, MQLOG_ENOENT when no route matched
 * (the message names the header and its value), MQLOG_ECORRUPT for
 * malformed headers, MQLOG_EINVAL for NULL arguments.  Costs one scan of the
 * record's headers and of the table: for a few dozen types this beats a
 * hash table.  Thread-safe (the handlers permitting).
 */
MQLOG_API int mqlog_route_record(const mqlog_record *rec,
				 const char *header_key,
				 const mqlog_route *routes, size_t nroutes);

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

#define MQLOG_OFFSET_EARLIEST UINT64_C(0xFFFFFFFFFFFFFFFE)
#define MQLOG_OFFSET_LATEST   UINT64_C(0xFFFFFFFFFFFFFFFF)

/*
 * mqlog_reader_open - a cursor over @partition of @t, positioned at the
 * partition's start.  A reader is used by one thread at a time; many
 * readers may read one partition concurrently, in any process.
 *
 * While it is open, a reader of a writable directory pins the segment it
 * reads (one of 64 slots per partition, shared by all processes; the pin
 * moves when the reader changes segment and goes at close or when its
 * process dies): retention deletes neither that segment nor any later one,
 * and the byte and age limits stop before it, so a slow reader does not
 * lose records to them.  Keep idle readers closed.
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
MQLOG_API int mqlog_reader_read(mqlog_reader *r, mqlog_record *recs, size_t max,
				size_t *n);

/*
 * mqlog_reader_wait - block until the partition's end moves past the
 * reader's position, or @timeout_ms passes (-1 waits forever).  Woken by
 * appends from any process through a futex on the partition's shared state.
 * Returns 0 when records are available, MQLOG_ETIMEDOUT otherwise.
 */
MQLOG_API int mqlog_reader_wait(mqlog_reader *r, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Consumers and consumer groups                                            */
/* ------------------------------------------------------------------------ */

/*
 * A consumer reads a set of partitions of one topic and hands out records
 * in batches, blocking while it has caught up.  It is either
 *
 *  - standalone: the application chooses the partitions
 *    (mqlog_consumer_assign) and where to read (mqlog_consumer_seek*); no
 *    offsets are committed; or
 *  - a member of a consumer group (options.group): the group divides the
 *    topic's partitions between its live members, each partition owned by
 *    one member at a time, and remembers per partition a committed offset
 *    (the next record to process) from which the next owner resumes.
 *
 * Groups work across threads and processes of one host, with no broker:
 * membership, ownership and offsets live in the directory's LMDB
 * environment.  A group is identified by its name and the topic, so one
 * group name may be used on several topics independently.  Every group
 * sees every record (publish/subscribe); inside a group each record goes
 * to one member (work sharing).
 *
 * Membership.  A member joins when its consumer opens, holds a lease, and
 * leaves when it closes.  A background thread of the consumer renews the
 * lease every heartbeat_ms, but never to more than lease_ms past the
 * application's last call of mqlog_consumer_poll() (or
 * mqlog_consumer_heartbeat(), for long processing): call one of them at
 * least once every lease_ms.  A member whose lease ran out, or whose
 * process is gone (even after a kill -9), is removed by the next heartbeat
 * of any other member.
 *
 * Rebalance.  Every change of membership bumps the group's generation and
 * computes, from the live members and the partitions alone, which member
 * each partition should go to (strategy range, round-robin or sticky).  It
 * is cooperative: a member that is to lose a partition first commits what
 * it delivered (in the auto-commit modes), then releases it; only then may
 * the new owner claim it, starting at that committed offset.  So without
 * crashes no record is delivered twice within a group and none is skipped.
 * After a crash, the partitions of the dead member resume from its last
 * commit (at-least-once).  Joining, leaving and releasing wake the members
 * at once through a futex word in DIR/groups/GROUP; a killed member is
 * noticed within one heartbeat interval.
 *
 * Fencing.  A commit is accepted only from a live member that owns the
 * partition in the group's records; otherwise MQLOG_ESTALE.  A member that
 * finds itself removed (its lease ran out while it was stalled) reports its
 * partitions as lost (MQLOG_REBALANCE_LOST), rejoins with a new member id,
 * and never hands out records while its own lease has run out.
 *
 * Waiting.  A caught-up poll sleeps in futex_waitv(2) on the wake-up words
 * of its partitions (bumped by every append, in any process) and on the
 * group's word, so it wakes within microseconds of an append or a
 * rebalance, without polling.  Up to 127 partitions are waited on at once;
 * a consumer with more waits on them in rotating groups of 127.
 *
 * Group names follow the topic name rule: 1-249 characters of
 * [A-Za-z0-9._-], not "." or "..".
 *
 * A consumer handle is used by one thread at a time (it may move between
 * threads); many consumers, of one group or not, may run in the threads of
 * one process.  Close consumers before their topic.
 */
typedef struct mqlog_consumer mqlog_consumer;

/* How a group divides the partitions among its live members (ordered by
 * the generation they joined at, then member id). */
enum mqlog_assign_strategy {
	MQLOG_ASSIGN_RANGE = 0,	      /* contiguous ranges, the first members
				       * get one more (Kafka's range) */
	MQLOG_ASSIGN_ROUND_ROBIN = 1, /* partition p to member p mod n */
	MQLOG_ASSIGN_STICKY = 2,      /* balanced, moving as few partitions as
				       * possible from the previous assignment */
};

/* When a group member's offsets are committed. */
enum mqlog_commit_mode {
	/*
	 * At-least-once (the default): the records of a poll count as
	 * processed when the application calls poll again (or commit, or
	 * close); their offsets are committed then, at most every
	 * auto_commit_interval_ms, and always before a partition is released
	 * and at close.  A crash replays what was not committed.
	 */
	MQLOG_COMMIT_AFTER = 0,
	/*
	 * At-most-once: poll commits the offsets of the records it is about
	 * to return before it returns them.  A crash loses what was being
	 * processed.
	 */
	MQLOG_COMMIT_BEFORE = 1,
	/*
	 * The application commits (mqlog_consumer_commit*), typically also
	 * from the REVOKED callback.  A partition released or closed with
	 * delivered but uncommitted records is replayed by its next owner.
	 */
	MQLOG_COMMIT_MANUAL = 2,
};

/* Rebalance events reported to options.on_rebalance. */
enum mqlog_rebalance_event {
	MQLOG_REBALANCE_ASSIGNED = 1, /* these partitions are now ours; their
				       * positions are set (seek to override) */
	MQLOG_REBALANCE_REVOKED = 2,  /* these go to another member once the
				       * callback returns; commit now (manual
				       * mode) */
	MQLOG_REBALANCE_LOST = 3,     /* these were taken away while we were
				       * not in the group: commits for them
				       * fail with MQLOG_ESTALE */
};

/*
 * The rebalance callback: called from inside mqlog_consumer_poll() (and
 * mqlog_consumer_close(), for REVOKED) in the polling thread, with no lock
 * held.  It may call mqlog_consumer_commit*(), _seek*(), _position(),
 * _committed(), _assignment(); poll and close fail there with MQLOG_EBUSY.
 * @partitions is valid during the call.
 */
typedef void (*mqlog_rebalance_fn)(void *arg, mqlog_consumer *c, int event,
				   const uint32_t *partitions, size_t count);

typedef struct mqlog_consumer_options {
	const char *group; /* group name; NULL: a standalone consumer */
	int strategy;	   /* enum mqlog_assign_strategy; default RANGE.
			    * The group uses its first member's. */
	int commit_mode;   /* enum mqlog_commit_mode; default AFTER */
	uint32_t auto_commit_interval_ms; /* AFTER: least time between two
					   * commits; 0: at every poll.  Default
					   * 1000 */
	uint32_t heartbeat_ms; /* lease renewal period, 1..3600000; default
				* 1000 */
	uint32_t lease_ms;     /* how long a member that stopped polling
				* stays in the group, >= 2 * heartbeat_ms;
				* default 10000 */
	uint64_t reset_offset; /* where a partition without a committed
				* offset starts: MQLOG_OFFSET_EARLIEST
				* (default) or MQLOG_OFFSET_LATEST; also a
				* standalone consumer's initial position */
	mqlog_rebalance_fn on_rebalance; /* NULL: none */
	void *rebalance_arg;		 /* its first argument */
} mqlog_consumer_options;

/* mqlog_consumer_options_init - fill @opts with the defaults above. */
MQLOG_API void mqlog_consumer_options_init(mqlog_consumer_options *opts);

/*
 * mqlog_group_name_valid - 1 when @name is a valid group name (the topic
 * name rule), else 0.  Thread-safe.
 */
MQLOG_API int mqlog_group_name_valid(const char *name);

/*
 * mqlog_consumer_open - a consumer of topic @t with @opts (NULL: the
 * defaults, standalone).  @t is borrowed: close the consumer first.
 *
 * A group member joins the group here (one durable LMDB transaction) and
 * claims the partitions that are free in its share; the others follow in
 * later polls, as their owners release them.  Opening never waits for
 * other members.
 *
 * Returns 0 and stores the handle in *out, or MQLOG_EINVAL (an option out of
 * range, a bad group name; the message names it), MQLOG_ERDONLY (a group
 * member needs a writable directory), MQLOG_ENOMEM, an I/O error.
 */
MQLOG_API int mqlog_consumer_open(mqlog_topic *t,
				  const mqlog_consumer_options *opts,
				  mqlog_consumer **out);

/*
 * mqlog_consumer_close - leave and release.  A group member first reports
 * its partitions as REVOKED, commits what it delivered (auto-commit modes),
 * releases them and leaves the group in one transaction, and wakes the
 * other members so that they take over at once.  Errors on the way are
 * ignored (the lease then runs out).  NULL is a harmless no-op.
 */
MQLOG_API void mqlog_consumer_close(mqlog_consumer *c);

/*
 * mqlog_consumer_assign - a standalone consumer reads @partitions (which
 * replace the previous set; partitions kept keep their positions, new ones
 * start at options.reset_offset).  MQLOG_EINVAL for a group member or a
 * partition out of range.
 */
MQLOG_API int mqlog_consumer_assign(mqlog_consumer *c,
				    const uint32_t *partitions, size_t count);

/*
 * mqlog_consumer_assignment - the partitions this consumer reads now, in
 * increasing order: up to @max into @partitions, the total in *count.
 */
MQLOG_API int mqlog_consumer_assignment(mqlog_consumer *c, uint32_t *partitions,
					size_t max, size_t *count);

/*
 * mqlog_consumer_seek - read @partition (one of the assignment) from
 * @offset, MQLOG_OFFSET_EARLIEST or MQLOG_OFFSET_LATEST on.  MQLOG_ERANGE
 * outside [start, end] (position unchanged); MQLOG_EINVAL when the
 * partition is not assigned.  In a group the new position is what the next
 * commit stores.
 */
MQLOG_API int mqlog_consumer_seek(mqlog_consumer *c, uint32_t partition,
				  uint64_t offset);

/* mqlog_consumer_seek_time - as seek, to the first record stamped at or
 * after @timestamp_ms (the end when none is). */
MQLOG_API int mqlog_consumer_seek_time(mqlog_consumer *c, uint32_t partition,
				       int64_t timestamp_ms);

/* mqlog_consumer_position - the offset of the next record poll returns
 * from @partition.  MQLOG_EINVAL when it is not assigned. */
MQLOG_API int mqlog_consumer_position(mqlog_consumer *c, uint32_t partition,
				      uint64_t *offset);

/*
 * mqlog_consumer_poll - up to @max records from the assigned partitions.
 *
 * Returns 0 with *count records in @recs (each partition's records in
 * offset order; partitions take turns from one poll to the next), or 0 with
 * *count == 0 when @timeout_ms passed with nothing new (-1 waits forever,
 * 0 never waits).  A group member also does its group work here: the
 * commit of the previous poll's records (AFTER mode), releasing and
 * claiming partitions, rebalance callbacks (the lease is renewed by the
 * consumer's heartbeat thread, off this path).
 *
 * Zero copy: the byte runs of the records point into the memory-mapped
 * segments and stay valid until the next poll, seek, assign or close of
 * this consumer; copy what must live longer.
 *
 * Errors: MQLOG_EINVAL (NULL arguments, max 0), MQLOG_EBUSY (called from a
 * rebalance callback), MQLOG_ECORRUPT (a batch failed validation; the
 * message names the partition and file; records before it were returned by
 * earlier polls), LMDB or I/O errors of the group work (message names the
 * group and topic).  When retention removed records before they were
 * read, the partition continues at its start.
 */
MQLOG_API int mqlog_consumer_poll(mqlog_consumer *c, mqlog_record *recs,
				  size_t max, int timeout_ms, size_t *count);

/* One partition's offset, for commits. */
typedef struct mqlog_partition_offset {
	uint32_t partition; /* partition */
	uint64_t offset;    /* the next offset to process */
} mqlog_partition_offset;

/*
 * mqlog_consumer_commit - commit, durably, the position of every assigned
 * partition (everything delivered so far counts as processed), and of the
 * <topic>.retry partitions the member reads (see mqlog_consumer_nack()).
 *
 * mqlog_consumer_commit_offsets - commit @count explicit offsets (the next
 * record to process in each partition of the topic itself).  An offset outside
 * the partition's [start, end] is clamped into it.
 *
 * Both return 0 once the commit is durable (LMDB synced), MQLOG_EINVAL for
 * a standalone consumer or a partition not assigned to this member, or
 * MQLOG_ESTALE when the group no longer counts this member as the owner
 * (it was removed from the group, or the partition was reassigned); the
 * message names the group, topic, partition and generations, and nothing
 * is committed.  Either commits all offsets or none.
 */
MQLOG_API int mqlog_consumer_commit(mqlog_consumer *c);
MQLOG_API int mqlog_consumer_commit_offsets(
	mqlog_consumer *c, const mqlog_partition_offset *offsets, size_t count);

/*
 * mqlog_consumer_committed - the group's committed offset of @partition
 * (any partition of the topic), read from LMDB.  MQLOG_ENOENT when there is
 * none, MQLOG_EINVAL for a standalone consumer.
 */
MQLOG_API int mqlog_consumer_committed(mqlog_consumer *c, uint32_t partition,
				       uint64_t *offset);

/*
 * mqlog_consumer_heartbeat - tell the group the application is alive
 * without polling (for processing that takes longer than lease_ms): renews
 * the lease now and lets the heartbeat thread keep renewing it.
 * MQLOG_ESTALE when the member was already removed; 0 for a standalone
 * consumer.
 */
MQLOG_API int mqlog_consumer_heartbeat(mqlog_consumer *c);

/* The member id (0 for a standalone consumer) and the group generation
 * this member last synchronised at. */
MQLOG_API uint64_t mqlog_consumer_member_id(const mqlog_consumer *c);
MQLOG_API uint64_t mqlog_consumer_generation(const mqlog_consumer *c);

/* ------------------------------------------------------------------------ */
/* Retries, dead letters, delayed delivery and expiry                       */
/* ------------------------------------------------------------------------ */

/*
 * A record that a group member cannot process is nacked: it leaves its
 * partition (the group commits past it, so the records behind it keep
 * flowing) and a copy goes to the topic's retry topic <topic>.retry,
 * created on first use with the topic's partition count and sync policy.
 * Every member of the group also reads <topic>.retry, as a member of the
 * same group there, and delivers the copy again through the same poll,
 * no earlier than its due time.  The delivery that reaches the topic's
 * max_attempts and is nacked again goes instead to the dead-letter topic
 * <topic>.dlq, which nobody reads until it is inspected or replayed
 * (mqlog_dlq_replay(), mqlog-tool dlq).
 *
 * Atomicity.  The commit past the record and the copy are tied by a
 * delivery intent, written in the commit's LMDB transaction and removed
 * once the copy is durably appended.  A crash anywhere in between leaves
 * either nothing (the record is delivered again from its partition) or
 * the intent, which the next owner of the partition completes when it
 * claims it, appending the copy only if the destination does not hold it
 * yet.  The record is never lost and never copied twice.
 *
 * Reserved headers (names starting with "mqlog."; values ASCII decimal
 * unless noted; docs/FORMAT.md lists them):
 *   mqlog.attempt           failed deliveries so far (1 on the first copy)
 *   mqlog.due               ms since the epoch: not delivered before
 *   mqlog.expires           ms since the epoch: skipped from then on (TTL)
 *   mqlog.group             the group that nacked it (retry copies are
 *                           delivered to that group only)
 *   mqlog.origin.topic, mqlog.origin.partition, mqlog.origin.offset,
 *   mqlog.origin.timestamp  where and when the record was first appended
 *   mqlog.reason            the reason given to the last nack (text)
 *   mqlog.source            topic:partition:offset:group of the record
 *                           this one is a copy of (idempotence key)
 *
 * Ordering.  Each partition of a topic delivers in offset order; a nacked
 * record comes back later, out of that order, from the retry partition of
 * the same number.  A retry partition is also read in order: a copy is
 * held until it is due, and those behind it wait with it, so a group that
 * mixes long and short delays on one partition sees the short ones late
 * (never early).  Copies are read by whichever member owns the retry
 * partition, which need not own the original partition.
 *
 * Delivery gate.  Every consumer, for every record that has headers,
 * holds a record whose mqlog.due lies ahead (with the rest of its
 * partition: produce delayed records with mqlog_schedule() rather than
 * into the topic itself) and skips, without delivering, a record whose
 * mqlog.expires has passed; both count in mqlog_consumer_stats.  Records
 * without headers cost one test.
 */

/* nack: use the topic's retry_delay_ms. */
#define MQLOG_NACK_DEFAULT_DELAY (-1)

/*
 * mqlog_consumer_nack - the record @rec, handed out by the last poll of
 * group member @c (from the topic or its retry topic), failed: commit past
 * it and send a copy to <topic>.retry, to be delivered again to the group
 * in @delay_ms (0..86400000, or MQLOG_NACK_DEFAULT_DELAY), or, when this
 * was its max_attempts-th delivery, to <topic>.dlq.  @reason (may be NULL,
 * at most 1024 bytes) is kept in the copy's mqlog.reason header.
 *
 * Call it before the next poll (the record's memory is valid until then)
 * and at most once per delivery.  The commit moves the partition's
 * committed offset to rec->offset + 1 unless it is already further: the
 * records before it in the partition count as processed.  Durable when it
 * returns (one LMDB sync and one fdatasync).
 *
 * Errors, with nothing changed: MQLOG_EINVAL (NULL, a standalone
 * consumer, a record this member did not deliver or whose partition it no
 * longer reads, a delay or reason out of range, a consumer of a .retry or
 * .dlq topic, a topic name over 243 characters), MQLOG_ESTALE (the group
 * gave the partition to another member).  An I/O error after the commit
 * (a full disk) returns the error, but the nack stands: its copy is
 * appended by a later poll of this consumer or by the partition's next
 * owner.  Not thread-safe (as the consumer).
 */
MQLOG_API int mqlog_consumer_nack(mqlog_consumer *c, const mqlog_record *rec,
				  int64_t delay_ms, const char *reason);

typedef struct mqlog_consumer_stats {
	uint64_t delivered;	/* records handed out by poll */
	uint64_t expired;	/* records skipped: mqlog.expires had passed */
	uint64_t held;		/* times a partition was held for a record's
				 * mqlog.due */
	uint64_t foreign;	/* retry copies of other groups skipped */
	uint64_t retried;	/* nacks sent to <topic>.retry */
	uint64_t dead_lettered; /* nacks sent to <topic>.dlq */
	uint64_t recovered;	/* interrupted nacks completed on claim */
} mqlog_consumer_stats;

/* mqlog_consumer_stats_get - the counters of @c since it was opened. */
MQLOG_API int mqlog_consumer_stats_get(const mqlog_consumer *c,
				       mqlog_consumer_stats *out);

/*
 * mqlog_schedule - delayed delivery: append @msg so that the groups of @t
 * receive it no earlier than @due_ms (ms since the epoch).  The record
 * goes to <t>.retry (created if missing) with mqlog.due, mqlog.attempt 0
 * and mqlog.origin.topic, in the partition its key maps to (any partition
 * for a null key), so the partitions of @t keep flowing meanwhile; every
 * group consuming @t gets it (standalone consumers do not read retry
 * topics).  @msg may carry mqlog.expires but no other reserved header
 * (MQLOG_EINVAL).  The offset in <t>.retry goes to *offset (may be NULL).
 * Same durability and errors as mqlog_append().  Thread-safe.
 */
MQLOG_API int mqlog_schedule(mqlog_topic *t, const mqlog_msg *msg,
			     int64_t due_ms, uint64_t *offset);

/*
 * mqlog_dlq_replay - append the records of <topic>.dlq back to the topic
 * they came from (mqlog.origin.topic, else @topic; partition
 * mqlog.origin.partition modulo its partition count), without their
 * reserved headers, with a fresh attempt count.  Progress is the committed
 * offset of group @group (NULL: "mqlog.replay") on <topic>.dlq, advanced
 * with each record through the same intent as a nack: a replay that is
 * interrupted (even by kill -9) and run again neither skips nor repeats a
 * record.  At most @max records (0: all there are now); the count goes to
 * *replayed (may be NULL).  MQLOG_ENOENT when @topic or its .dlq topic
 * does not exist.  Thread-safe; concurrent replays with one group share
 * the partitions.
 */
MQLOG_API int mqlog_dlq_replay(mqlog *db, const char *topic, const char *group,
			       uint64_t max, uint64_t *replayed);

/* ------------------------------------------------------------------------ */
/* Group inspection and administration                                      */
/* ------------------------------------------------------------------------ */

typedef struct mqlog_group_member_info {
	uint64_t member_id;	  /* member id */
	int32_t pid;		  /* its process */
	int alive;		  /* 1: lease current and process running */
	int64_t lease_left_ms;	  /* until the lease runs out (< 0: expired) */
	int64_t heartbeat_age_ms; /* since its last heartbeat */
	uint64_t generation;	  /* generation it last synchronised at */
	uint32_t owned;		  /* partitions it owns */
} mqlog_group_member_info;

typedef struct mqlog_group_partition_info {
	uint32_t partition;	/* partition */
	int has_committed;	/* 1 when an offset was committed */
	uint64_t committed;	/* committed offset (next to process) */
	int64_t commit_time_ms; /* wall clock ms of that commit */
	uint64_t start_offset;	/* the partition's log start */
	uint64_t end_offset;	/* the partition's log end */
	uint64_t lag;		/* end - committed (committed clamped into
				 * [start, end]; start when none) */
	uint64_t owner;		/* member that owns it; 0 none */
	uint64_t assigned;	/* member the assignment gives it; 0 none */
} mqlog_group_partition_info;

typedef struct mqlog_group_info {
	char *group;	     /* group name */
	char *topic;	     /* topic name */
	uint64_t generation; /* current generation (0: never joined) */
	int strategy;	     /* enum mqlog_assign_strategy */
	uint64_t lag;	     /* sum of the partitions' lag */
	size_t live_members; /* members with alive == 1 */
	size_t member_count; /* entries in members */
	mqlog_group_member_info *members;
	size_t partition_count; /* entries in partitions (the topic's) */
	mqlog_group_partition_info *partitions;
} mqlog_group_info;

/*
 * mqlog_group_list - every group of every topic (those with members or
 * committed offsets), sorted by group then topic.  *groups is an array of
 * *count entries allocated by the library: release it with
 * mqlog_group_info_free().  Changes nothing.  Thread-safe.
 */
MQLOG_API int mqlog_group_list(mqlog *db, mqlog_group_info **groups,
			       size_t *count);

/* mqlog_group_describe - one group on one topic (*out: one entry).
 * MQLOG_ENOENT for an unknown topic or a group without records. */
MQLOG_API int mqlog_group_describe(mqlog *db, const char *group,
				   const char *topic, mqlog_group_info **out);

MQLOG_API void mqlog_group_info_free(mqlog_group_info *groups, size_t count);

#define MQLOG_RESET_FORCE                                   \
	0x1u /* reset even while the group has live members \
	      */

/*
 * mqlog_group_reset_offsets - set the committed offset of every partition
 * of @topic for @group to @offset (MQLOG_OFFSET_EARLIEST, _LATEST, or an
 * offset, clamped into each partition's [start, end]).
 * mqlog_group_reset_offsets_time - to the first record stamped at or after
 * @timestamp_ms in each partition (its end when there is none).
 *
 * Refused with MQLOG_EBUSY while the group has live members, unless @flags
 * has MQLOG_RESET_FORCE: then the members are removed from the group as
 * well (they see MQLOG_REBALANCE_LOST, rejoin and resume from the new
 * offsets).  Durable when it returns.  Thread-safe.
 */
MQLOG_API int mqlog_group_reset_offsets(mqlog *db, const char *group,
					const char *topic, uint64_t offset,
					unsigned flags);
MQLOG_API int mqlog_group_reset_offsets_time(mqlog *db, const char *group,
					     const char *topic,
					     int64_t timestamp_ms,
					     unsigned flags);

/*
 * mqlog_group_delete - remove @group from @topic: its committed offsets,
 * its membership and its registration, so that it no longer holds records
 * under interest retention (those all remaining groups committed past are
 * freed before this returns).  Refused with MQLOG_EBUSY while the group
 * has live members, unless @flags has MQLOG_RESET_FORCE: the members are
 * then removed too (they see MQLOG_REBALANCE_LOST; a member that polls
 * again joins afresh and registers the group again).  MQLOG_ENOENT when
 * the group has no record on the topic.  Durable when it returns.
 * Thread-safe.
 */
MQLOG_API int mqlog_group_delete(mqlog *db, const char *group,
				 const char *topic, unsigned flags);

/* ------------------------------------------------------------------------ */
/* Inspection, verification and repair                                      */
/* ------------------------------------------------------------------------ */

/* One batch as seen by a scan. */
typedef struct mqlog_batch_info {
	const char *file;      /* segment file path */
	uint64_t position;     /* byte position of the batch in the file */
	uint32_t length;       /* bytes of the whole batch */
	uint64_t base_offset;  /* offset of the first record */
	uint32_t record_count; /* records in the batch */
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
	uint64_t topics;	/* topics checked */
	uint64_t partitions;	/* partitions checked */
	uint64_t segments;	/* segment files checked */
	uint64_t batches;	/* valid batches */
	uint64_t records;	/* valid records */
	uint64_t bytes;		/* bytes checked */
	uint64_t index_entries; /* index entries checked against the log */
	uint64_t problems;	/* problems found */
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
	uint64_t partitions;	  /* partitions recovered */
	uint64_t truncated_bytes; /* torn-tail bytes removed */
	uint64_t index_entries;	  /* index entries rewritten */
	uint64_t offsets_clamped; /* committed group offsets that were past
				   * the recovered log end (a power cut lost
				   * the log tail they counted), set to it */
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
