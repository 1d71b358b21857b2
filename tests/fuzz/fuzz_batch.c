/*
 * fuzz_batch.c - libFuzzer target for the batch and record decoder:
 * batch_check_header, batch_check_body, batch_iter_next, headers_decode.
 *
 * Input: one mode byte, then the bytes of a batch.  A fuzzer cannot forge
 * an XXH3 checksum, so the mode can ask the target to make them right
 * first (bit 0: recompute both checksums; bit 1: also set the length field
 * to the input's size) so that the record parser is reached; bit 2 walks
 * the records even when the body checksum fails (the parser must be safe
 * on any bytes, not only on checksummed ones).
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch_hdr h;
	const char *why = NULL;
	uint8_t mode, *buf;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	/* An exact-size copy, so that ASan sees every read past the end. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if ((mode & 1) && size >= BATCH_HEADER_SIZE) {
		if (mode & 2)
			mq_st32(buf + 4, (uint32_t)size);
		uint32_t len = mq_ld32(buf + 4);
		if (len >= BATCH_BODY_CSUM_START && len <= size)
			mq_st64(buf + 24,
				XXH3_64bits(buf + BATCH_BODY_CSUM_START,
					    len - BATCH_BODY_CSUM_START));
		batch_seal(buf, mq_ld64(buf + 16));
	}
	if (batch_check_header(buf, size, &h, &why) == 0) {
		int body = batch_check_body(buf, &h, &why);
		if (body == 0 || (mode & 4)) {
			struct batch_iter it;
			mqlog_record rec;
			mqlog_header hd[8];
			int rc;
			batch_iter_init(&it, buf, &h);
			memset(&rec, 0, sizeof rec);
			while ((rc = batch_iter_next(&it, &rec, &why)) == 1) {
				if (rec.header_count)
					(void)headers_decode(
						rec.headers_raw,
						rec.headers_raw_len,
						rec.header_count, hd, 8);
				(void)mqlog_record_headers(&rec, hd, 8);
			}
		}
	}
	/* The header decoder on its own, on the raw bytes. */
	if (size >= 2)
		(void)headers_decode(buf + 1, size - 1, buf[0], NULL, 0);
	free(buf);
	return 0;
}
