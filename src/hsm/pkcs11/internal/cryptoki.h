// The only place signet includes the PKCS#11 header. p11-kit's pkcs11.h defines lower-case GNU
// names unless CRYPTOKI_COMPAT is set first; with it we get the standard CK_* names of PKCS#11
// v2.40 (plus the EdDSA constants of v3.0, but no CK_EDDSA_PARAMS).
#pragma once

#ifndef CRYPTOKI_COMPAT
#define CRYPTOKI_COMPAT 1
#endif
#include <p11-kit/pkcs11.h>
