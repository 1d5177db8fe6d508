#include "hsm/pkcs11/internal/module.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <utility>

#include "hsm/pkcs11/internal/ckr.h"

namespace signet::hsm::internal {

void Module::LibraryCloser::operator()(void* library) const {
  if (library != nullptr) dlclose(library);
}

Module::Module(std::string path, std::unique_ptr<void, LibraryCloser> library,
               CK_FUNCTION_LIST* functions)
    : path_(std::move(path)), library_(std::move(library)), functions_(functions) {}

Result<Module> Module::Load(const std::string& path) {
  if (path.empty()) {
    return InvalidArgument(
        "no PKCS#11 module path given; set the module path (e.g. "
        "/usr/lib/softhsm/libsofthsm2.so)");
  }
  // dlopen's message alone does not tell "missing" from "broken", and the two need different
  // fixes, so look at the file first.
  struct stat st {};
  bool missing = ::stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR);

  dlerror();  // Clear any earlier message.
  // RTLD_NODELETE: the module stays mapped after dlclose. Vendor modules may leave threads or
  // atexit handlers behind that would crash once their code is unmapped (p11-kit avoids unloading
  // for the same reason), and leak reports can then still name the module that leaked.
  std::unique_ptr<void, LibraryCloser> library(
      dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE));
  if (library == nullptr) {
    const char* why = dlerror();
    std::string message = "cannot load PKCS#11 module " + path + ": " +
                          (why != nullptr ? why : "unknown dlopen error") +
                          "; check the module path";
    return missing ? NotFound(std::move(message)) : FailedPrecondition(std::move(message));
  }
  void* symbol = dlsym(library.get(), "C_GetFunctionList");
  if (symbol == nullptr) {
    return FailedPrecondition("cannot use " + path +
                              ": it has no C_GetFunctionList, so it is not a PKCS#11 module; "
                              "check the module path");
  }
  auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(symbol);
  CK_FUNCTION_LIST* functions = nullptr;
  CK_RV rv = get_function_list(&functions);
  if (rv != CKR_OK || functions == nullptr) {
    return FailedPrecondition("cannot use PKCS#11 module " + path +
                              ": C_GetFunctionList returned " + DescribeRv(rv) +
                              "; check that the module is installed correctly");
  }
  if (functions->version.major < 2) {
    return FailedPrecondition("PKCS#11 module " + path + " implements Cryptoki " +
                              std::to_string(functions->version.major) + "." +
                              std::to_string(functions->version.minor) +
                              "; signet needs 2.20 or later");
  }
  return Module(path, std::move(library), functions);
}

Module::Module(Module&& other) noexcept
    : path_(std::move(other.path_)),
      library_(std::move(other.library_)),
      functions_(std::exchange(other.functions_, nullptr)),
      owns_initialization_(std::exchange(other.owns_initialization_, false)) {}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    Finalize();
    path_ = std::move(other.path_);
    library_ = std::move(other.library_);
    functions_ = std::exchange(other.functions_, nullptr);
    owns_initialization_ = std::exchange(other.owns_initialization_, false);
  }
  return *this;
}

Module::~Module() { Finalize(); }

CK_RV Module::Initialize() {
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = Call(&CK_FUNCTION_LIST::C_Initialize, &args);
  if (rv == CKR_OK) {
    owns_initialization_ = true;
    return CKR_OK;
  }
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return CKR_OK;
  return rv;
}

void Module::Finalize() {
  if (owns_initialization_ && functions_ != nullptr) {
    (void)Call(&CK_FUNCTION_LIST::C_Finalize, nullptr);
  }
  owns_initialization_ = false;
}

CK_RV Session::Open(const Module& module, CK_SLOT_ID slot, Session* session) {
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_OpenSession, slot,
                         CK_FLAGS{CKF_SERIAL_SESSION | CKF_RW_SESSION}, nullptr, nullptr, &handle);
  if (rv != CKR_OK) return rv;
  *session = Session(&module, handle);
  return CKR_OK;
}

Session::Session(Session&& other) noexcept
    : module_(other.module_), handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    Close();
    module_ = other.module_;
    handle_ = std::exchange(other.handle_, CK_INVALID_HANDLE);
  }
  return *this;
}

CK_SESSION_HANDLE Session::Release() { return std::exchange(handle_, CK_INVALID_HANDLE); }

void Session::Close() {
  if (handle_ != CK_INVALID_HANDLE && module_ != nullptr) {
    (void)module_->Call(&CK_FUNCTION_LIST::C_CloseSession, handle_);
  }
  handle_ = CK_INVALID_HANDLE;
}

namespace {

// Ends an object search however the search went (v2.40 §5.7: one active search per session).
class FindOperation {
 public:
  FindOperation(const Module& module, CK_SESSION_HANDLE session)
      : module_(module), session_(session) {}
  // Ends the search exactly once; copying would end it twice.
  FindOperation(const FindOperation&) = delete;
  FindOperation& operator=(const FindOperation&) = delete;
  ~FindOperation() { (void)module_.Call(&CK_FUNCTION_LIST::C_FindObjectsFinal, session_); }

 private:
  const Module& module_;
  CK_SESSION_HANDLE session_;
};

}  // namespace

CK_RV FindObjects(const Module& module, CK_SESSION_HANDLE session,
                  std::span<CK_ATTRIBUTE> attributes, size_t limit,
                  std::vector<CK_OBJECT_HANDLE>* found) {
  found->clear();
  CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_FindObjectsInit, session, attributes.data(),
                         CK_ULONG{attributes.size()});
  if (rv != CKR_OK) return rv;
  FindOperation search(module, session);
  CK_OBJECT_HANDLE batch[16];
  while (found->size() < limit) {
    CK_ULONG count = 0;
    rv = module.Call(&CK_FUNCTION_LIST::C_FindObjects, session, batch, CK_ULONG{std::size(batch)},
                     &count);
    if (rv != CKR_OK) return rv;
    if (count == 0) break;
    // A module that reports more handles than the array holds is broken; reading past it would
    // take stack bytes for object handles.
    if (count > std::size(batch)) return CKR_GENERAL_ERROR;
    for (CK_ULONG i = 0; i < count && found->size() < limit; ++i) found->push_back(batch[i]);
  }
  return CKR_OK;
}

CK_RV GetAttributeBytes(const Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_TYPE type, Bytes* value) {
  CK_ATTRIBUTE attribute{type, nullptr, 0};
  CK_RV rv =
      module.Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session, object, &attribute, CK_ULONG{1});
  if (rv != CKR_OK) return rv;
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return CKR_ATTRIBUTE_TYPE_INVALID;
  // signet reads ids, labels, public keys and EC parameters: none comes near this. A module that
  // claims more is broken, and the length is not worth an allocation.
  if (attribute.ulValueLen > kMaxAttributeBytes) return CKR_GENERAL_ERROR;
  const CK_ULONG capacity = attribute.ulValueLen;
  value->assign(capacity, 0);
  attribute.pValue = value->data();
  rv =
      module.Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session, object, &attribute, CK_ULONG{1});
  if (rv != CKR_OK) return rv;
  // The second answer may only shrink what the first announced.
  if (attribute.ulValueLen > capacity) return CKR_GENERAL_ERROR;
  value->resize(attribute.ulValueLen);
  return CKR_OK;
}

CK_RV GetAttributeUlong(const Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                        CK_ATTRIBUTE_TYPE type, CK_ULONG* value) {
  CK_ATTRIBUTE attribute{type, value, sizeof(CK_ULONG)};
  CK_RV rv =
      module.Call(&CK_FUNCTION_LIST::C_GetAttributeValue, session, object, &attribute, CK_ULONG{1});
  if (rv != CKR_OK) return rv;
  return attribute.ulValueLen == sizeof(CK_ULONG) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

std::string TrimPadded(const unsigned char* field, size_t size) {
  while (size > 0 && (field[size - 1] == ' ' || field[size - 1] == '\0')) --size;
  return std::string(reinterpret_cast<const char*>(field), size);
}

std::string TokenSelector::Describe() const {
  return label.empty() ? "token with serial '" + serial + "'" : "token '" + label + "'";
}

CK_RV ListSlotsWithToken(const Module& module, std::vector<CK_SLOT_ID>* slots) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    CK_ULONG count = 0;
    CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_GetSlotList, CK_BBOOL{CK_TRUE}, nullptr, &count);
    if (rv != CKR_OK) return rv;
    slots->assign(count, 0);
    rv = module.Call(&CK_FUNCTION_LIST::C_GetSlotList, CK_BBOOL{CK_TRUE}, slots->data(), &count);
    if (rv == CKR_BUFFER_TOO_SMALL) continue;  // A token appeared between the two calls.
    if (rv != CKR_OK) return rv;
    slots->resize(count);
    return CKR_OK;
  }
  return CKR_BUFFER_TOO_SMALL;
}

TokenSearch FindToken(const Module& module, const TokenSelector& selector) {
  TokenSearch search;
  std::vector<CK_SLOT_ID> slots;
  search.rv = ListSlotsWithToken(module, &slots);
  if (search.rv != CKR_OK) return search;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    // A token that vanished between the calls is simply not a candidate.
    if (module.Call(&CK_FUNCTION_LIST::C_GetTokenInfo, slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) continue;
    std::string label = TrimPadded(info.label);
    search.labels.push_back(label);
    bool match = selector.label.empty() ? TrimPadded(info.serialNumber) == selector.serial
                                        : label == selector.label;
    if (match) {
      ++search.matches;
      search.slot = slot;
    }
  }
  if (search.matches != 1) search.slot.reset();
  return search;
}

}  // namespace signet::hsm::internal
