/*
 * route.c - routing records to handlers by the value of a header: the
 * "message type -> handler" pattern of a consumer that reads a topic
 * carrying several kinds of messages.
 *
 * The table is the caller's array, scanned in order: a consumer typically
 * knows a handful of message types, and a linear scan of a few dozen short
 * strings costs less than hashing.  The header lookup is
 * mqlog_record_header() (record.c), which owns the encoding.
 */
#include <inttypes.h>
#include <string.h>

#include "internal.h"

/* Quote at most a prefix of a header value in a message, unprintable
 * bytes as '?': values are arbitrary bytes. */
static void shown(char *out, size_t cap, const mqlog_bytes *v)
{
	size_t i, n = v->len < cap - 4 ? v->len : cap - 4;
	const unsigned char *s = v->data;

	for (i = 0; i < n; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	out[i] = '\0';
	if (n < v->len)
		strcat(out, "...");
}

int mqlog_route_record(const mqlog_record *rec, const char *header_key,
		       const mqlog_route *routes, size_t nroutes)
{
	mqlog_bytes v = { NULL, 0 };
	size_t i;
	int rc;

	if (!rec || !header_key || (!routes && nroutes))
		return mq_err(MQLOG_EINVAL, "route record: NULL argument");
	rc = mqlog_record_header(rec, header_key, strlen(header_key), &v);
	if (rc < 0)
		return rc;
	for (i = 0; i < nroutes; i++) {
		const mqlog_route *r = &routes[i];

		if (!r->handler)
			return mq_err(MQLOG_EINVAL,
				      "route record: route %zu has no handler",
				      i);
		if (r->value == NULL)
			return r->handler(r->arg, rec);
		if (rc == 1 && v.data && strlen(r->value) == v.len &&
		    memcmp(r->value, v.data, v.len) == 0)
			return r->handler(r->arg, rec);
	}
	if (rc == 0)
		return mq_err(MQLOG_ENOENT,
			      "record at partition %" PRIu32 " offset %" PRIu64
			      ": no header \"%s\" and no fallback route",
			      rec->partition, rec->offset, header_key);
	if (!v.data)
		return mq_err(MQLOG_ENOENT,
			      "record at partition %" PRIu32 " offset %" PRIu64
			      ": header \"%s\" is null and no fallback route",
			      rec->partition, rec->offset, header_key);
	char buf[64];
	shown(buf, sizeof buf, &v);
	return mq_err(MQLOG_ENOENT,
		      "record at partition %" PRIu32 " offset %" PRIu64
		      ": no route for header \"%s\" = \"%s\"",
		      rec->partition, rec->offset, header_key, buf);
}
