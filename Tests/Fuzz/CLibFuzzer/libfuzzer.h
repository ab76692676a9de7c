// libFuzzer's own mutator, for BodyFuzzer.swift's custom mutator. Defined by the fuzzer runtime that
// `swiftc -sanitize=fuzzer` links in (compiler-rt FuzzerInterface.h).
#include <stddef.h>
#include <stdint.h>

size_t LLVMFuzzerMutate(uint8_t *Data, size_t Size, size_t MaxSize);
