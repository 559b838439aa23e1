/*
 * test_quota.c - per-uid counters and the admission decision.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "quota.h"

TestSuite(quota);

Test(quota, table_counts_per_uid_and_forgets_a_uid_at_zero)
{
	struct quota_table *t = quota_table_new();
	uint64_t            m, b;

	quota_table_add(t, 1000, 100);
	quota_table_add(t, 1000, 50);
	quota_table_add(t, 1001, 7);
	quota_table_get(t, 1000, &m, &b);
	cr_assert_eq(m, 2);
	cr_assert_eq(b, 150);
	quota_table_get(t, 1001, &m, &b);
	cr_assert_eq(m, 1);
	cr_assert_eq(b, 7);
	quota_table_get(t, 42, &m, &b);
	cr_assert_eq(m, 0);
	cr_assert_eq(b, 0);
	cr_assert_eq(quota_table_uids(t), 2);
	quota_table_sub(t, 1000, 100);
	quota_table_sub(t, 1001, 7);
	cr_assert_eq(quota_table_uids(t), 1);
	quota_table_get(t, 1000, &m, &b);
	cr_assert_eq(m, 1);
	cr_assert_eq(b, 50);
	quota_table_sub(t, 1000, 50);
	quota_table_sub(t, 1000, 50); /* not there: ignored */
	cr_assert_eq(quota_table_uids(t), 0);
	quota_table_free(t);
}

Test(quota, table_grows_and_keeps_every_uid)
{
	struct quota_table *t = quota_table_new();
	uint64_t            m, b;
	long                uid;

	for (uid = 0; uid < 5000; uid++) {
		quota_table_add(t, uid, (uint64_t)uid);
		quota_table_add(t, uid, 1);
	}
	cr_assert_eq(quota_table_uids(t), 5000);
	for (uid = 0; uid < 5000; uid++) {
		quota_table_get(t, uid, &m, &b);
		cr_assert_eq(m, 2);
		cr_assert_eq(b, (uint64_t)uid + 1);
	}
	for (uid = 0; uid < 5000; uid++) {
		quota_table_sub(t, uid, (uint64_t)uid);
		quota_table_sub(t, uid, 1);
	}
	cr_assert_eq(quota_table_uids(t), 0);
	quota_table_free(t);
	quota_table_free(NULL);
}

static int
test_usage(void *arg, long uid, uint64_t *msgs, uint64_t *bytes)
{
	quota_table_get(arg, uid, msgs, bytes);
	return 0;
}

static int
test_usage_fails(void *arg, long uid, uint64_t *msgs, uint64_t *bytes)
{
	(void)arg;
	(void)uid;
	(void)msgs;
	(void)bytes;
	return -EIO;
}

Test(quota, the_third_message_is_refused_naming_the_limit)
{
	struct quota_table *t = quota_table_new();
	struct quota        q = { .max_msgs = 2,
		       .max_bytes = 0,
		       .daemon_uid = 999,
		       .uid_usage = test_usage,
		       .arg = t };
	struct sq_err       err = { 0 };

	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 10, &err), 0);
	quota_table_add(t, 1000, 10);
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 10, &err), 0);
	/* One more being committed by the caller counts too. */
	cr_assert_eq(quota_admit(&q, 1000, 1, 10, 10, &err), -EDQUOT);
	quota_table_add(t, 1000, 10);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 0, &err), -EDQUOT);
	cr_assert_eq(err.code, -EDQUOT);
	cr_assert_str_eq(err.msg,
	    "uid 1000 has 2 messages queued: the limit is "
	    "max_messages_per_user = 2");
	/* Another uid is not affected. */
	cr_assert_eq(quota_admit(&q, 1001, 0, 0, 0, &err), 0);
	/* A delivered message frees a place. */
	quota_table_sub(t, 1000, 10);
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 0, &err), 0);
	quota_table_free(t);
}

Test(quota, bytes_limit_counts_the_incoming_message)
{
	struct quota_table *t = quota_table_new();
	struct quota        q = { .max_msgs = 0,
		       .max_bytes = 1000,
		       .daemon_uid = 999,
		       .uid_usage = test_usage,
		       .arg = t };
	struct sq_err       err = { 0 };

	quota_table_add(t, 1000, 600);
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 400, &err), 0);
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 401, &err), -EDQUOT);
	cr_assert_not_null(
	    strstr(err.msg,
		"uid 1000 has 600 bytes queued (with this message more): the "
		"limit is max_bytes_per_user = 1000"),
	    "%s", err.msg);
	cr_assert_eq(quota_admit(&q, 1000, 1, 400, 1, &err), -EDQUOT);
	quota_table_add(t, 1000, 400);
	/* At the limit, even a message of unknown size is refused. */
	cr_assert_eq(quota_admit(&q, 1000, 0, 0, 0, &err), -EDQUOT);
	quota_table_free(t);
}

Test(quota, root_daemon_user_and_unknown_uid_are_exempt)
{
	struct quota_table *t = quota_table_new();
	struct quota        q = { .max_msgs = 1,
		       .max_bytes = 1,
		       .daemon_uid = 999,
		       .uid_usage = test_usage,
		       .arg = t };
	struct sq_err       err = { 0 };
	long                uids[] = { 0, 999, -1 };
	size_t              i;

	for (i = 0; i < 3; i++) {
		quota_table_add(t, uids[i], 100);
		quota_table_add(t, uids[i], 100);
		cr_assert_eq(quota_admit(&q, uids[i], 5, 500, 500, &err), 0,
		    "uid %ld", uids[i]);
	}
	quota_table_free(t);
}

Test(quota, no_limits_or_no_counts_admit_everything)
{
	struct quota_table *t = quota_table_new();
	struct quota        q = { .max_msgs = 0,
		       .max_bytes = 0,
		       .daemon_uid = 999,
		       .uid_usage = test_usage,
		       .arg = t };
	struct sq_err       err = { 0 };

	quota_table_add(t, 1000, 1u << 30);
	cr_assert_eq(quota_admit(&q, 1000, 100, 100, 100, &err), 0);
	cr_assert_eq(quota_admit(NULL, 1000, 100, 100, 100, &err), 0);
	q.max_msgs = 1;
	q.uid_usage = NULL;
	cr_assert_eq(quota_admit(&q, 1000, 100, 100, 100, &err), 0);
	/* A count that fails never refuses mail. */
	q.uid_usage = test_usage_fails;
	cr_assert_eq(quota_admit(&q, 1000, 100, 100, 100, &err), 0);
	quota_queued(NULL, NULL);
	quota_queued(&q, NULL);
	quota_table_free(t);
}
