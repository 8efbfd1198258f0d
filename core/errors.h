/* Error codes: functions return 0 or one of these (negative). */
#ifndef GW_ERRORS_H
#define GW_ERRORS_H

enum {
  GW_OK = 0,
  GW_ENOMEM = -1,
  GW_EINVAL = -2,     /* bad argument or value */
  GW_ECLOSED = -3,    /* the connection is gone or closing */
  GW_ELIMIT = -4,     /* a configured limit was reached */
  GW_EEXIST = -5,
  GW_ENOENT = -6,
  GW_EIO = -7,
  GW_EPOLICY = -8,    /* the policy failed to load or a hook failed */
};

#endif
