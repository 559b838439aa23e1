/* smtp_conn.c - under construction */
#include "util.h"
