// A PKCS#11 module for tests that forwards every call to a real module and makes chosen calls fail
// on request, to exercise Pkcs11KeyStore's recovery from failures SoftHSM never produces by
// itself (pkcs11-softhsm.md §4: deleting the token directory does not yield CKR_DEVICE_REMOVED).
//
// C_GetFunctionList dlopens the module named by the environment variable SIGNET_SHIM_TARGET, copies
// its function list and replaces a few entries. The test controls it through these exported C
// functions (found with dlsym):
//   signet_shim_inject(rv, count)           the next `count` C_SignInit calls return `rv`
//                                           (queued after earlier injections)
//   signet_shim_inject_into(fn, rv, count)  the same for fn = "C_SignInit", "C_Sign",
//                                           "C_OpenSession", "C_Login", "C_FindObjects",
//                                           "C_GetAttributeValue", "C_DestroyObject",
//                                           "C_GetSessionInfo", "C_CloseSession",
//                                           "C_GenerateKeyPair" or "C_GenerateKey"
// Injecting kShimLie (below) makes the call succeed but answer something no correct module would:
// C_FindObjects reports one handle more than it was given room for, C_GetAttributeValue's size
// query announces 2^40 bytes, C_Sign reports a signature one byte shorter than it wrote.
// Injecting kShimV220 into a generation makes it answer as a PKCS#11 v2.20 module would: a
// template holding CKA_COPYABLE (new in v2.40) is CKR_ATTRIBUTE_TYPE_INVALID, any other is
// generated.
//   signet_shim_clear()                     drops every pending injection
//   signet_shim_calls(fn)                   how often fn was called (the functions above, plus
//                                           "C_Initialize", "C_Finalize", "C_FindObjectsInit")
// A failed C_Sign first completes the real operation, as a real failing C_Sign would end it
// (PKCS#11 v2.40 §5.11). Thread-safe; process-wide state is acceptable in a test-only module.
#include <dlfcn.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "hsm/pkcs11/internal/cryptoki.h"

namespace {

enum Hook {
  kSignInit,
  kSign,
  kOpenSession,
  kLogin,
  kInitialize,
  kFinalize,
  kFindObjectsInit,
  kFindObjects,
  kGetAttributeValue,
  kDestroyObject,
  kGetSessionInfo,
  kCloseSession,
  kGenerateKeyPair,
  kGenerateKey,
  kHookCount
};
constexpr std::array<const char*, kHookCount> kHookNames = {
    "C_SignInit",          "C_Sign",          "C_OpenSession",     "C_Login",
    "C_Initialize",        "C_Finalize",      "C_FindObjectsInit", "C_FindObjects",
    "C_GetAttributeValue", "C_DestroyObject", "C_GetSessionInfo",  "C_CloseSession",
    "C_GenerateKeyPair",   "C_GenerateKey"};

// Keep in step with the tests (pkcs11_fault_test.cc).
constexpr CK_RV kShimLie = CKR_VENDOR_DEFINED + 0x11e;
constexpr CK_RV kShimV220 = CKR_VENDOR_DEFINED + 0x220;

bool Holds(CK_ATTRIBUTE_PTR attributes, CK_ULONG count, CK_ATTRIBUTE_TYPE type) {
  for (CK_ULONG i = 0; i < count; ++i) {
    if (attributes[i].type == type) return true;
  }
  return false;
}

struct ShimState {
  std::mutex mu;
  std::array<std::deque<CK_RV>, kHookCount> injected;  // Guarded by mu.
  std::array<std::atomic<unsigned long>, kHookCount> calls{};
  CK_FUNCTION_LIST* target = nullptr;  // Set once in C_GetFunctionList.
  CK_FUNCTION_LIST shim{};
};

ShimState& State() {
  static ShimState state;
  return state;
}

int HookIndex(const char* name) {
  for (int i = 0; i < kHookCount; ++i) {
    if (std::strcmp(kHookNames[static_cast<size_t>(i)], name) == 0) return i;
  }
  return -1;
}

// Counts the call and returns the injected failure for it, or CKR_OK.
CK_RV Enter(Hook hook) {
  ShimState& s = State();
  s.calls[hook].fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(s.mu);
  std::deque<CK_RV>& queue = s.injected[hook];
  if (queue.empty()) return CKR_OK;
  CK_RV rv = queue.front();
  queue.pop_front();
  return rv;
}

CK_RV ShimInitialize(CK_VOID_PTR args) {
  (void)Enter(kInitialize);
  return State().target->C_Initialize(args);
}

CK_RV ShimFinalize(CK_VOID_PTR reserved) {
  (void)Enter(kFinalize);
  return State().target->C_Finalize(reserved);
}

CK_RV ShimOpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,
                      CK_SESSION_HANDLE_PTR session) {
  if (CK_RV rv = Enter(kOpenSession); rv != CKR_OK) return rv;
  return State().target->C_OpenSession(slot, flags, application, notify, session);
}

CK_RV ShimLogin(CK_SESSION_HANDLE session, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                CK_ULONG pin_length) {
  if (CK_RV rv = Enter(kLogin); rv != CKR_OK) return rv;
  return State().target->C_Login(session, user, pin, pin_length);
}

CK_RV ShimFindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR attributes, CK_ULONG count) {
  (void)Enter(kFindObjectsInit);
  return State().target->C_FindObjectsInit(session, attributes, count);
}

CK_RV ShimSignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  if (CK_RV rv = Enter(kSignInit); rv != CKR_OK) return rv;
  return State().target->C_SignInit(session, mechanism, key);
}

CK_RV ShimFindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects, CK_ULONG max_count,
                      CK_ULONG_PTR count) {
  CK_RV injected = Enter(kFindObjects);
  if (injected != CKR_OK && injected != kShimLie) return injected;
  CK_RV rv = State().target->C_FindObjects(session, objects, max_count, count);
  if (rv == CKR_OK && injected == kShimLie) *count = max_count + 1;
  return rv;
}

CK_RV ShimDestroyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object) {
  if (CK_RV rv = Enter(kDestroyObject); rv != CKR_OK) return rv;
  return State().target->C_DestroyObject(session, object);
}

CK_RV ShimGetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info) {
  if (CK_RV rv = Enter(kGetSessionInfo); rv != CKR_OK) return rv;
  return State().target->C_GetSessionInfo(session, info);
}

CK_RV ShimCloseSession(CK_SESSION_HANDLE session) {
  if (CK_RV rv = Enter(kCloseSession); rv != CKR_OK) return rv;
  return State().target->C_CloseSession(session);
}

CK_RV ShimGetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                            CK_ATTRIBUTE_PTR attributes, CK_ULONG count) {
  CK_RV injected = Enter(kGetAttributeValue);
  if (injected != CKR_OK && injected != kShimLie) return injected;
  CK_RV rv = State().target->C_GetAttributeValue(session, object, attributes, count);
  if (rv == CKR_OK && injected == kShimLie) {
    for (CK_ULONG i = 0; i < count; ++i) {
      if (attributes[i].pValue == nullptr) attributes[i].ulValueLen = CK_ULONG{1} << 40;
    }
  }
  return rv;
}

CK_RV ShimSign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_length,
               CK_BYTE_PTR signature, CK_ULONG_PTR signature_length) {
  CK_RV injected = Enter(kSign);
  if (injected == CKR_OK || injected == kShimLie) {
    CK_RV rv = State().target->C_Sign(session, data, data_length, signature, signature_length);
    if (rv == CKR_OK && injected == kShimLie && signature != nullptr) --*signature_length;
    return rv;
  }
  // End the real operation, as a failing C_Sign does, and throw the signature away.
  std::vector<CK_BYTE> discard(1024);
  CK_ULONG discard_length = discard.size();
  (void)State().target->C_Sign(session, data, data_length, discard.data(), &discard_length);
  return injected;
}

CK_RV ShimGenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                          CK_ATTRIBUTE_PTR public_template, CK_ULONG public_count,
                          CK_ATTRIBUTE_PTR private_template, CK_ULONG private_count,
                          CK_OBJECT_HANDLE_PTR public_key, CK_OBJECT_HANDLE_PTR private_key) {
  CK_RV injected = Enter(kGenerateKeyPair);
  if (injected == kShimV220) {
    if (Holds(public_template, public_count, CKA_COPYABLE) ||
        Holds(private_template, private_count, CKA_COPYABLE)) {
      return CKR_ATTRIBUTE_TYPE_INVALID;
    }
  } else if (injected != CKR_OK) {
    return injected;
  }
  return State().target->C_GenerateKeyPair(session, mechanism, public_template, public_count,
                                           private_template, private_count, public_key,
                                           private_key);
}

CK_RV ShimGenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                      CK_ATTRIBUTE_PTR attributes, CK_ULONG count, CK_OBJECT_HANDLE_PTR key) {
  CK_RV injected = Enter(kGenerateKey);
  if (injected == kShimV220) {
    if (Holds(attributes, count, CKA_COPYABLE)) return CKR_ATTRIBUTE_TYPE_INVALID;
  } else if (injected != CKR_OK) {
    return injected;
  }
  return State().target->C_GenerateKey(session, mechanism, attributes, count, key);
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  ShimState& s = State();
  static std::once_flag once;
  std::call_once(once, [&s] {
    const char* target_path = std::getenv("SIGNET_SHIM_TARGET");
    if (target_path == nullptr) return;
    void* library = dlopen(target_path, RTLD_NOW | RTLD_LOCAL);  // Kept loaded for the process.
    if (library == nullptr) return;
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(library, "C_GetFunctionList"));
    if (get_list == nullptr || get_list(&s.target) != CKR_OK || s.target == nullptr) return;
    s.shim = *s.target;
    s.shim.C_GetFunctionList = &C_GetFunctionList;
    s.shim.C_Initialize = &ShimInitialize;
    s.shim.C_Finalize = &ShimFinalize;
    s.shim.C_OpenSession = &ShimOpenSession;
    s.shim.C_Login = &ShimLogin;
    s.shim.C_FindObjectsInit = &ShimFindObjectsInit;
    s.shim.C_FindObjects = &ShimFindObjects;
    s.shim.C_GetAttributeValue = &ShimGetAttributeValue;
    s.shim.C_DestroyObject = &ShimDestroyObject;
    s.shim.C_GetSessionInfo = &ShimGetSessionInfo;
    s.shim.C_GenerateKeyPair = &ShimGenerateKeyPair;
    s.shim.C_GenerateKey = &ShimGenerateKey;
    s.shim.C_CloseSession = &ShimCloseSession;
    s.shim.C_SignInit = &ShimSignInit;
    s.shim.C_Sign = &ShimSign;
  });
  if (s.target == nullptr) return CKR_GENERAL_ERROR;
  *list = &s.shim;
  return CKR_OK;
}

__attribute__((visibility("default"))) void signet_shim_inject_into(const char* function, CK_RV rv,
                                                                    int count) {
  int hook = HookIndex(function);
  if (hook < 0) std::abort();  // A typo in a test.
  ShimState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  for (int i = 0; i < count; ++i) s.injected[static_cast<size_t>(hook)].push_back(rv);
}

__attribute__((visibility("default"))) void signet_shim_inject(CK_RV rv, int count) {
  signet_shim_inject_into("C_SignInit", rv, count);
}

__attribute__((visibility("default"))) void signet_shim_clear() {
  ShimState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  for (std::deque<CK_RV>& queue : s.injected) queue.clear();
}

__attribute__((visibility("default"))) unsigned long signet_shim_calls(const char* function) {
  int hook = HookIndex(function);
  if (hook < 0) std::abort();
  return State().calls[static_cast<size_t>(hook)].load();
}

}  // extern "C"
