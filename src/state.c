/*
 * state.c - the shared partition state: robust process-shared locks, the
 * sequence lock that publishes the log position, and the futex wake-up word.
 *
 * The state lives in a MAP_SHARED mapping of DIR/topics/T/P/state.  The
 * locks are PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST: when a process
 * dies holding one, the next locker gets EOWNERDEAD and repairs the
 * partition (partition.c) before marking the mutex consistent.  The futex
 * word is waited on without FUTEX_PRIVATE_FLAG so that a wake in one process
 * reaches waiters in another.
 */
#include "engine.h"
#include "group.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int state_init_locks(struct pstate *st)
{
	pthread_mutexattr_t a;
	int rc;

	rc = pthread_mutexattr_init(&a);
	if (rc)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!rc)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!rc)
		rc = pthread_mutex_init(&st->append_lock, &a);
	if (!rc)
		rc = pthread_mutex_init(&st->sync_lock, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

/*
 * Readers take no lock: they retry while a publish is in progress (odd
 * sequence) or happened while they read.  Fields are read with relaxed
 * atomics so that the race is defined behaviour.
 */
void state_read_view(const struct pstate *st, struct pview *v)
{
	uint32_t s1, s2;

	for (;;) {
		s1 = __atomic_load_n(&st->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			__builtin_ia32_pause();
			continue;
		}
		v->seg_base = MQ_LOAD_RELAXED(&st->seg_base);
		v->seg_end_pos = MQ_LOAD_RELAXED(&st->seg_end_pos);
		v->end_offset = MQ_LOAD_RELAXED(&st->end_offset);
		v->start_offset = MQ_LOAD_RELAXED(&st->start_offset);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&st->seq, __ATOMIC_RELAXED);
		if (s1 == s2)
			return;
	}
}

void state_publish_begin(struct pstate *st)
{
	uint32_t s = MQ_LOAD_RELAXED(&st->seq);

	MQ_STORE_RELAXED(&st->seq, s + 1);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

void state_publish_end(struct pstate *st)
{
	uint32_t s = MQ_LOAD_RELAXED(&st->seq);

	MQ_STORE(&st->seq, s + 1);
}

static long futex(uint32_t *uaddr, int op, uint32_t val,
		  const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

void state_wake_word(uint32_t *word, uint32_t *waiters)
{
	__atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
	/* The syscall only when someone sleeps: appends stay syscall-free. */
	if (__atomic_load_n(waiters, __ATOMIC_SEQ_CST) > 0)
		futex(word, FUTEX_WAKE, INT32_MAX, NULL);
}

void state_wait_word(uint32_t *word, uint32_t *waiters, uint32_t seen,
		     int timeout_ms)
{
	struct timespec ts, *tsp = NULL;

	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
		tsp = &ts;
	}
	__atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
	/* FUTEX_WAIT re-checks the word atomically: a wake between our
	 * caller's check and this call is never missed. */
	if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == seen)
		futex(word, FUTEX_WAIT, seen, tsp);
	__atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
}

static pthread_once_t boot_once = PTHREAD_ONCE_INIT;
static uint8_t boot_id[16];
static bool boot_known;

static void boot_read(void)
{
	char buf[64];
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n;
	size_t k = 0;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	/* 36 characters: hex digits and dashes. */
	for (ssize_t i = 0; i < n && k < 32; i++) {
		int c = buf[i], v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			continue;
		boot_id[k / 2] = (uint8_t)(boot_id[k / 2] << 4 | v);
		k++;
	}
	boot_known = k == 32;
}

bool state_boot_id(uint8_t out[16])
{
	pthread_once(&boot_once, boot_read);
	if (!boot_known)
		return false;
	memcpy(out, boot_id, sizeof boot_id);
	return true;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

bool state_spin(uint32_t *const *words, const uint32_t *seen, size_t n,
		uint64_t ns)
{
	uint64_t t0 = 0;

	if (!ns)
		return false;
	for (unsigned i = 0;; i++) {
		for (size_t k = 0; k < n; k++)
			if (__atomic_load_n(words[k], __ATOMIC_ACQUIRE) !=
			    seen[k])
				return true;
		cpu_relax();
		if ((i & 63) == 0) {
			uint64_t now = mq_mono_ns();
			if (!t0)
				t0 = now;
			else if (now - t0 >= ns)
				return false;
		}
	}
}

void state_wake(struct pstate *st)
{
	state_wake_word(&st->wake, &st->waiters);
}

void state_wait(struct pstate *st, uint32_t seen, int timeout_ms)
{
	state_wait_word(&st->wake, &st->waiters, seen, timeout_ms);
}

/* ======================================================================== */
/* Reader pins                                                              */
/* ======================================================================== */

/* Whether the owner of @slot is gone; never for this process. */
static bool pin_dead(const struct pstate_pin *slot, int32_t pid,
		     const struct group_self *self)
{
	struct group_member m = { 0 };

	if (pid == self->pid)
		return false;
	m.pid = pid;
	m.pid_start = MQ_LOAD_RELAXED(&slot->pid_start);
	m.pidns = MQ_LOAD_RELAXED(&slot->pidns);
	m.boot = self->boot;	   /* the state is rebuilt every boot */
	m.lease_until = INT64_MAX; /* only the process decides */
	return group_member_dead(&m, 0, self) != NULL;
}

/* Free @slot of dead @pid; false when someone else changed it first. */
static bool pin_reap(struct pstate *st, struct pstate_pin *slot, int32_t pid)
{
	int32_t expect = pid;

	if (!__atomic_compare_exchange_n(&slot->pid, &expect, 0, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return false;
	__atomic_sub_fetch(&st->pins_claimed, 1, __ATOMIC_SEQ_CST);
	return true;
}

int state_pin_claim(struct pstate *st)
{
	struct group_self self;

	group_self_get(&self);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < PSTATE_PINS; i++) {
			struct pstate_pin *slot = &st->pins[i];
			int32_t cur =
				__atomic_load_n(&slot->pid, __ATOMIC_SEQ_CST);

			/* Second pass: take over slots of dead processes. */
			if (cur != 0 &&
			    (pass == 0 || !pin_dead(slot, cur, &self) ||
			     !pin_reap(st, slot, cur)))
				continue;
			int32_t expect = 0;
			if (!__atomic_compare_exchange_n(
				    &slot->pid, &expect, self.pid, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
				continue;
			__atomic_add_fetch(&st->pins_claimed, 1,
					   __ATOMIC_SEQ_CST);
			MQ_STORE_RELAXED(&slot->pid_start, self.pid_start);
			MQ_STORE_RELAXED(&slot->pidns, self.pidns);
			__atomic_store_n(&slot->seg, PIN_NONE,
					 __ATOMIC_SEQ_CST);
			return i;
		}
	}
	return -1;
}

void state_pin_set(struct pstate *st, int slot, uint64_t seg)
{
	if (slot >= 0)
		__atomic_store_n(&st->pins[slot].seg, seg, __ATOMIC_SEQ_CST);
}

void state_pin_release(struct pstate *st, int slot)
{
	if (slot < 0)
		return;
	__atomic_store_n(&st->pins[slot].seg, PIN_NONE, __ATOMIC_SEQ_CST);
	__atomic_store_n(&st->pins[slot].pid, 0, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&st->pins_claimed, 1, __ATOMIC_SEQ_CST);
}

uint64_t state_pin_lowest(struct pstate *st, bool check_pids)
{
	struct group_self self;
	uint64_t low = PIN_NONE;

	if (__atomic_load_n(&st->pins_claimed, __ATOMIC_SEQ_CST) == 0)
		return PIN_NONE;
	if (check_pids)
		group_self_get(&self);
	for (int i = 0; i < PSTATE_PINS; i++) {
		struct pstate_pin *slot = &st->pins[i];
		int32_t pid = __atomic_load_n(&slot->pid, __ATOMIC_SEQ_CST);
		uint64_t seg;

		if (pid == 0)
			continue;
		seg = __atomic_load_n(&slot->seg, __ATOMIC_SEQ_CST);
		if (seg >= low)
			continue;
		if (check_pids && pin_dead(slot, pid, &self)) {
			(void)pin_reap(st, slot, pid);
			continue;
		}
		low = seg;
	}
	return low;
}
