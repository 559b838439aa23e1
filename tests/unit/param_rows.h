/*
 * param_rows.h - a ParameterizedTest whose rows run in one process.
 *
 * Criterion runs every row of a ParameterizedTest in a process of its own:
 * it re-executes the test binary, so each row pays the start of an
 * ASan+UBSan binary with its libraries (Criterion's libgit2 parses the
 * system CA bundle in every process), LeakSanitizer's scan at exit and the
 * teardown, about 0.15 s of CPU on the CI machine, for rows that each take
 * microseconds.  A file includes this header after
 * <criterion/parameterized.h>; its ParameterizedTest then defines one test
 * (same suite, name and options) that calls the body for every row of the
 * table, in order, in one process:
 *
 *   - every row is still checked: a failing assertion fails the test with
 *     its message (which names the row), a crash or an ASan report fails
 *     it, and LeakSanitizer checks the process at exit, so a row that leaks
 *     still fails it;
 *   - the rows share the process: the suite's .init and .fini run once
 *     around all of them, and a row must not depend on a fresh process
 *     (a table whose rows need their own fixture, files or global state
 *     keeps Criterion's ParameterizedTest: do not include this header
 *     there);
 *   - the first failing row stops the test (cr_assert), as the first
 *     failing assertion stops any test.
 *
 * ParameterizedTestParameters and cr_make_param_array stay Criterion's.
 */
#ifndef SENDQ_TEST_PARAM_ROWS_H
#define SENDQ_TEST_PARAM_ROWS_H

#include <stddef.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#define SQ_ROWS_FIRST_(First, ...) First

/* The body follows the macro, as with Criterion's: it becomes the row
 * function, called with a pointer to each row. */
#define SQ_ROWS_TEST_(Param, Suite, Name, ...) \
	static void CR_IDENTIFIER_(Suite, Name, row)(Param); \
	Test(Suite, __VA_ARGS__) \
	{ \
		struct criterion_test_params rows_ = CR_IDENTIFIER_(Suite, \
		    Name, param)(); \
\
		for (size_t i_ = 0; i_ < rows_.length; i_++) \
			CR_IDENTIFIER_(Suite, Name, row) \
			((void *)((char *)rows_.params + i_ * rows_.size)); \
		if (rows_.cleanup != NULL) \
			rows_.cleanup(&rows_); \
	} \
	static void CR_IDENTIFIER_(Suite, Name, row)(Param)

#undef ParameterizedTest
#define ParameterizedTest(Param, Suite, ...) \
	SQ_ROWS_TEST_(Param, Suite, SQ_ROWS_FIRST_(__VA_ARGS__, 0), __VA_ARGS__)

#endif
