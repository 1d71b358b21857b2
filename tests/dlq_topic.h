/*
 * dlq_topic.h - the topic fixture shared by the retry and dead-letter
 * suites (test_dlq.c, test_intents.c): topic "t" opened as g_db / g_t, and
 * the heartbeat and lease their group members use.
 */
#ifndef MQLOG_TEST_DLQ_TOPIC_H
#define MQLOG_TEST_DLQ_TOPIC_H

#include "helpers.h"

#define HB_MS	 30u
#define LEASE_MS 150u

static mqlog *g_db;
static mqlog_topic *g_t;

/* A fresh topic "t" of @parts partitions with @attempts and @delay_ms. */
static inline void setup_topic(uint32_t parts, uint32_t attempts,
			       uint32_t delay_ms)
{
	mqlog_topic_config c = h_cfg(parts, 1u << 20, MQLOG_SYNC_NONE);

	c.max_attempts = attempts;
	c.retry_delay_ms = delay_ms;
	g_db = h_open(fx_dir);
	h_create(g_db, "t", &c);
	g_t = h_topic(g_db, "t");
}

static inline void teardown_topic(void)
{
	mqlog_topic_close(g_t);
	mqlog_close(g_db);
	g_t = NULL;
	g_db = NULL;
}

#endif
