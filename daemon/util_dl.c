/*
 * util_dl.c - sq_dl_load (util.h): an optional library opened at run
 * time.  Apart from util.c so that a program that does not load one
 * (sendq) links no dlopen: a static sendq would otherwise carry it
 * (SENDQ_STATIC_INJECTOR).
 */
#include <dlfcn.h>
#include <stdio.h>

#include "util.h"

int
sq_dl_load(const char *const *sonames, size_t n_sonames,
    const struct sq_dl_sym *syms, size_t n_syms, char *why, size_t whysz)
{
	void  *lib = NULL;
	size_t i;

	for (i = 0; i < n_sonames && lib == NULL; i++)
		lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		snprintf(why, whysz, "%s", dlerror());
		return -1;
	}
	for (i = 0; i < n_syms; i++) {
		/* POSIX: a function pointer through void * (dlsym). */
		*syms[i].fn = dlsym(lib, syms[i].name);
		if (*syms[i].fn == NULL) {
			snprintf(why, whysz, "%s: no %s", sonames[0],
			    syms[i].name);
			return -1;
		}
	}
	return 0;
}
