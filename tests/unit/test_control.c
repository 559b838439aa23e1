/*
 * test_control.c - the rights table of the control socket
 * (control_right_allows in daemon/control.c): who may read, read
 * everything, administer and submit, from the caller's facts.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdio.h>

#include "control.h"
#include "param_rows.h"

#define DAEMON 998L /* sendqd's own uid in these cases */
#define USER   1001L
#define OTHER  1002L

struct test_case {
	const char          *what;
	struct control_facts f;
	int                  read, read_all, admin, submit;
};

/* { uid, daemon_uid, admin_member, submit_restricted, submit_listed } */
static struct test_case test_cases[] = {
	{ "root", { 0, DAEMON, 0, 0, 0 }, 1, 1, 1, 1 },
	{ "root, submit restricted", { 0, DAEMON, 0, 1, 0 }, 1, 1, 1, 1 },
	{ "sendqd's user", { DAEMON, DAEMON, 0, 0, 0 }, 1, 1, 1, 1 },
	{ "sendqd's user, restricted", { DAEMON, DAEMON, 0, 1, 0 }, 1, 1, 1,
	    1 },
	{ "sendqd running as root", { 0, 0, 0, 1, 0 }, 1, 1, 1, 1 },
	{ "plain user", { USER, DAEMON, 0, 0, 0 }, 1, 0, 0, 1 },
	{ "plain user, not listed", { USER, DAEMON, 0, 1, 0 }, 1, 0, 0, 0 },
	{ "plain user, listed", { USER, DAEMON, 0, 1, 1 }, 1, 0, 0, 1 },
	{ "admin_group member", { OTHER, DAEMON, 1, 0, 0 }, 1, 1, 1, 1 },
	/* admin_group is about the queue, not about sending */
	{ "admin member, not listed", { OTHER, DAEMON, 1, 1, 0 }, 1, 1, 1, 0 },
	{ "admin member, listed", { OTHER, DAEMON, 1, 1, 1 }, 1, 1, 1, 1 },
	/* no credentials: nothing at all */
	{ "unknown uid", { -1, DAEMON, 0, 0, 0 }, 0, 0, 0, 0 },
	{ "unknown uid, facts say member", { -1, DAEMON, 1, 1, 1 }, 0, 0, 0,
	    0 },
	{ "unknown uid, daemon uid unknown", { -1, -1, 0, 0, 0 }, 0, 0, 0, 0 },
};

ParameterizedTestParameters(control, right_table)
{
	return cr_make_param_array(struct test_case, test_cases,
	    sizeof(test_cases) / sizeof(test_cases[0]));
}

ParameterizedTest(struct test_case *t, control, right_table)
{
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_READ, &t->f) != 0,
	    t->read, "%s: read", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_READ_ALL, &t->f) != 0,
	    t->read_all, "%s: read all", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_ADMIN, &t->f) != 0,
	    t->admin, "%s: administer", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_SUBMIT, &t->f) != 0,
	    t->submit, "%s: submit", t->what);
}
