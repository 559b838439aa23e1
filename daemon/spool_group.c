/*
 * spool_group.c - spool_set_queue_group (spool.h): the readers' group
 * looked up by name.  Apart from spool.c so that only the programs that
 * set the group (sendqd) link getgrnam_r: sendq links the spool too, and
 * a static sendq must carry no NSS call (SENDQ_STATIC_INJECTOR).
 */
#include <grp.h>

#include "spool.h"

int
spool_set_queue_group(struct spool *sp, const char *group, struct sq_err *err)
{
	struct group gr, *res = NULL;
	char         buf[4096];
	gid_t        gid = (gid_t)-1;

	if (group != NULL && group[0] != '\0' &&
	    getgrnam_r(group, &gr, buf, sizeof(buf), &res) == 0 && res != NULL)
		gid = gr.gr_gid;
	return spool_set_queue_gid(sp, group, gid, err);
}
