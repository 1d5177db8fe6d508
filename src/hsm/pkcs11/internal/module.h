// Thin, owning wrappers over one PKCS#11 module: the loaded library and its function list
// (Module), an open session (Session), and the few multi-call sequences every user repeats (object
// search, variable-length attributes, token discovery by label or serial).
//
// Threads: a Module's Call() may be used from many threads at once, provided the module was
// initialised with CKF_OS_LOCKING_OK (Initialize() does that). Initialize() and Finalize() must
// not run while other threads call into the module (PKCS#11 v2.40 §5.4: C_Finalize while other
// calls are in flight is undefined). A Session must be used by one thread at a time: PKCS#11 leaves
// that to the application and SoftHSM 2.6.1 crashes otherwise (pkcs11-softhsm.md §4).
//
// Object handles (CK_OBJECT_HANDLE) are not wrapped: they name token objects the module owns and
// there is nothing to release; callers cache them and drop them on logout or re-initialisation.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "hsm/pkcs11/internal/cryptoki.h"

namespace signet::hsm::internal {

// A PKCS#11 module loaded with dlopen, and whether this object initialised it.
class Module {
 public:
  // dlopen(path, RTLD_NOW | RTLD_LOCAL), then C_GetFunctionList (v2.40 §5.4). Fails with NotFound
  // when the file does not exist and FailedPrecondition when it cannot be loaded or is not a
  // PKCS#11 module; the message names the path. Does not initialise the module.
  static Result<Module> Load(const std::string& path);

  Module(Module&& other) noexcept;
  Module& operator=(Module&& other) noexcept;
  // A Module owns one dlopen reference and possibly the module's initialisation: a copy would
  // dlclose and C_Finalize twice.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  // C_Finalize if this object initialised the module, then dlclose.
  ~Module();

  // C_Initialize with CKF_OS_LOCKING_OK and no mutex callbacks (v2.40 §5.4.1). CKR_OK: this object
  // now owns the initialisation. CKR_CRYPTOKI_ALREADY_INITIALIZED (someone else in the process
  // initialised the module) is returned as CKR_OK too, but ownership is not taken, so Finalize()
  // will then never finalise it under the other user. Other codes are returned unchanged.
  CK_RV Initialize();
  // C_Finalize if this object owns the initialisation; forgets the ownership either way.
  void Finalize();
  bool owns_initialization() const { return owns_initialization_; }

  // Calls one entry of the function list: Call(&CK_FUNCTION_LIST::C_Sign, session, ...). Every
  // call into the module goes through here.
  template <typename Fn, typename... Args>
  CK_RV Call(Fn CK_FUNCTION_LIST::*function, Args... args) const {
    return (functions_->*function)(args...);
  }

  const std::string& path() const { return path_; }

 private:
  struct LibraryCloser {
    void operator()(void* library) const;
  };

  Module(std::string path, std::unique_ptr<void, LibraryCloser> library,
         CK_FUNCTION_LIST* functions);

  std::string path_;
  std::unique_ptr<void, LibraryCloser> library_;
  CK_FUNCTION_LIST* functions_ = nullptr;  // Owned by the library; valid while it is loaded.
  bool owns_initialization_ = false;
};

// An open PKCS#11 session (v2.40 §5.6). Closes it with C_CloseSession when destroyed. The Module
// must outlive the Session.
class Session {
 public:
  Session() = default;
  Session(const Module* module, CK_SESSION_HANDLE handle) : module_(module), handle_(handle) {}

  // C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION). On failure returns the code and
  // leaves *session empty.
  static CK_RV Open(const Module& module, CK_SLOT_ID slot, Session* session);

  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  // A Session closes its handle once; a copy would close it twice, and after a module reset the
  // second close could hit a session another user has since been given the same number.
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { Close(); }

  CK_SESSION_HANDLE get() const { return handle_; }
  bool valid() const { return handle_ != CK_INVALID_HANDLE; }

  // Forgets the handle without closing it, for handles known to be dead: after the module was
  // re-initialised the same number may belong to someone else's new session.
  CK_SESSION_HANDLE Release();
  // C_CloseSession now (result ignored: the handle may already be dead).
  void Close();

 private:
  const Module* module_ = nullptr;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

// C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal (v2.40 §5.7): the handles of objects that
// match `attributes`, at most `limit` of them. C_FindObjectsFinal runs even when a step fails, so
// the session never keeps an active search. CKR_GENERAL_ERROR if the module reports more handles
// than it was given room for.
CK_RV FindObjects(const Module& module, CK_SESSION_HANDLE session,
                  std::span<CK_ATTRIBUTE> attributes, size_t limit,
                  std::vector<CK_OBJECT_HANDLE>* found);

// Reads one variable-length attribute with the two-call pattern of v2.40 §5.2 (size, then value).
// CKR_ATTRIBUTE_SENSITIVE or CKR_ATTRIBUTE_TYPE_INVALID come back as the return code;
// CKR_GENERAL_ERROR if the module announces more than kMaxAttributeBytes, or the second call
// reports more than the first announced (a broken module).
inline constexpr CK_ULONG kMaxAttributeBytes = CK_ULONG{1} << 20;
CK_RV GetAttributeBytes(const Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_TYPE type, Bytes* value);
// Reads one CK_ULONG attribute (CKA_KEY_TYPE, CKA_CLASS, ...).
CK_RV GetAttributeUlong(const Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_TYPE type, CK_ULONG* value);

// A fixed-width, blank-padded CK_TOKEN_INFO text field without its padding (trailing blanks and
// NULs).
std::string TrimPadded(const unsigned char* field, size_t size);
template <size_t N>
std::string TrimPadded(const unsigned char (&field)[N]) {
  return TrimPadded(field, N);
}

// Which token to use: by label or by serial number (exactly one is non-empty).
struct TokenSelector {
  std::string label;
  std::string serial;

  // "token 'signet'" or "token with serial 'ab12...'", for messages.
  std::string Describe() const;
};

// What a search over the module's slots found (C_GetSlotList(CK_TRUE) + C_GetTokenInfo, v2.40
// §5.5). Slot ids are only meaningful until the module is next re-initialised (SoftHSM renumbers
// them), so callers search again after every re-initialisation instead of storing them.
struct TokenSearch {
  CK_RV rv = CKR_OK;  // failure of C_GetSlotList itself; the other fields are then empty
  std::optional<CK_SLOT_ID> slot;  // set when exactly one initialised token matched
  size_t matches = 0;
  std::vector<std::string> labels;  // labels of all initialised tokens seen, for error messages
};
TokenSearch FindToken(const Module& module, const TokenSelector& selector);

// The slots that have a token present (C_GetSlotList(CK_TRUE, ...), growing the buffer when the
// module reports CKR_BUFFER_TOO_SMALL).
CK_RV ListSlotsWithToken(const Module& module, std::vector<CK_SLOT_ID>* slots);

}  // namespace signet::hsm::internal
