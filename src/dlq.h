/*
 * dlq.h - retries, dead letters, delayed delivery and expiry inside the
 * library: the reserved headers (dlq.c), delivery intents and their
 * completion (dlq.c), as used by consumers (consumer.c).
 */
#ifndef MQLOG_DLQ_H
#define MQLOG_DLQ_H

#include "engine.h"

/* Reserved header names; values are ASCII decimal unless said otherwise. */
#define DLQ_H_ATTEMPT "mqlog.attempt"	   /* failed deliveries so far */
#define DLQ_H_DUE     "mqlog.due"	   /* not delivered before (ms epoch) */
#define DLQ_H_EXPIRES "mqlog.expires"	   /* skipped from then on (ms epoch) */
#define DLQ_H_GROUP   "mqlog.group"	   /* group that nacked it (text) */
#define DLQ_H_OTOPIC  "mqlog.origin.topic" /* original topic (text) */
#define DLQ_H_OPART   "mqlog.origin.partition"
#define DLQ_H_OOFF    "mqlog.origin.offset"
#define DLQ_H_OTS     "mqlog.origin.timestamp"
#define DLQ_H_REASON  "mqlog.reason" /* why it was nacked (text) */
#define DLQ_H_SOURCE                                             \
	"mqlog.source"	      /* topic:partition:offset:group of \
			       * the record this one copies */
#define DLQ_H_PREFIX "mqlog." /* every reserved name starts so */

#define DLQ_RETRY_SUFFIX ".retry"
#define DLQ_DLQ_SUFFIX	 ".dlq"
#define DLQ_REASON_MAX	 1024 /* longest reason kept */

/* The reserved headers of one record that delivery looks at. */
struct dlq_meta {
	bool has_attempt;  /* mqlog.attempt present */
	uint32_t attempt;  /* its value */
	int64_t due;	   /* mqlog.due, or INT64_MIN */
	int64_t expires;   /* mqlog.expires, or INT64_MAX */
	mqlog_bytes group; /* mqlog.group; data NULL when absent */
};

/*
 * dlq_meta_get - read the reserved headers of @rec (malformed values count
 * as absent).  Returns 0 or MQLOG_ECORRUPT for malformed headers.
 */
int dlq_meta_get(const mqlog_record *rec, struct dlq_meta *m);

/* dlq_is_derived_name - 1 when @topic ends in .retry or .dlq. */
bool dlq_is_derived_name(const char *topic);

/*
 * dlq_ensure_topic - open topic @name, creating it first when missing
 * with @partitions partitions and sync policy @sync.  *out must be closed
 * with mqlog_topic_close().
 */
int dlq_ensure_topic(mqlog *db, const char *name, uint32_t partitions, int sync,
		     mqlog_topic **out);

enum dlq_kind {
	DLQ_KIND_RETRY = 1,  /* to <topic>.retry */
	DLQ_KIND_DEAD = 2,   /* to <topic>.dlq */
	DLQ_KIND_REPLAY = 3, /* back to the origin topic */
};

/* What a nack (or a replay) appends, before it is encoded. */
struct dlq_copy {
	int kind;		    /* enum dlq_kind */
	const char *dest;	    /* destination topic */
	uint32_t dest_partition;    /* its partition */
	uint32_t create_partitions; /* partitions if it must be created */
	int create_sync;	    /* sync policy if it must be created */
	uint64_t hint;		    /* destination end offset before the
				     * intent: the copy, if appended, is at
				     * or after it */
	const char *src_topic;	    /* topic of the record copied */
	uint32_t src_partition;	    /* its partition */
	uint64_t src_offset;	    /* its offset */
	const char *group;	    /* group acting */
	const mqlog_record *rec;    /* the record copied */
	const char *origin_topic;   /* first topic of the record (NULL: keep
				     * the record's origin headers) */
	uint32_t attempt;	    /* mqlog.attempt to write (RETRY, DEAD) */
	int64_t due;		    /* mqlog.due to write, or INT64_MIN */
	const char *reason;	    /* mqlog.reason, or NULL */
};

/*
 * dlq_intent_encode - the intent for @cp: a malloc'd buffer in *buf of
 * *len bytes holding the destination and the whole record to append,
 * with its reserved headers.  MQLOG_ENOMEM, MQLOG_ECORRUPT (headers).
 */
int dlq_intent_encode(const struct dlq_copy *cp, uint8_t **buf, size_t *len);

/*
 * dlq_intent_deliver - append the record of an intent to its destination
 * (creating the destination topic if missing), durably (fdatasync).  With
 * @check, first look in the destination from the intent's hint on for a
 * record whose mqlog.source equals the intent's, and append nothing when
 * there is one (the append happened before a crash).  *appended (may be
 * NULL) tells whether it appended.  MQLOG_ECORRUPT for a bad intent.
 */
int dlq_intent_deliver(mqlog *db, const uint8_t *buf, size_t len, bool check,
		       bool *appended);

/*
 * dlq_complete - complete every pending intent of (@group, topic @tid,
 * @partition) (UINT32_MAX: all partitions): deliver with the check, then
 * delete the intent.  The caller owns the source partition(s) in the
 * group.  *done (may be NULL) counts the intents completed.
 */
int dlq_complete(mqlog *db, const char *group, uint32_t tid, uint32_t partition,
		 uint64_t *done);

#endif /* MQLOG_DLQ_H */
