// The vocabulary of update rules, shared by the registry (src/rules/registry.inc), the
// kernels of every backend and the engine. A rule is written as
//   - kernel rows: structs with the update of one element over lane values (see
//     src/rules/adam_rule.inc), one per variant of its state (amsgrad adds a state);
//   - a descriptor: its name, hyperparameters and, per row, its states (StateSpec), how
//     a group's hyperparameters pick a row and how they and the step count become the
//     row's per-step scalars.
// Kernels see a row's scalars as RuleScalars: plain words that the row's own Scalars
// struct is copied into, so one kernel type and one table serve every rule.
#pragma once

#include <algorithm>  // for the rules: std::max
#include <cmath>  // for the rules' per-step scalars
#include <cstdint>
#include <cstring>

#include "src/common/macros.h"

namespace octopage::rules {

// At most this many state arrays per parameter (AdEMAMix keeps three).
inline constexpr int kMaxStates = 3;
// A row's Scalars struct fits in this many fp32 words (CUDA passes 32 chunks' scalars
// in one kernel argument of at most 4 KiB).
inline constexpr int kMaxScalarWords = 12;

struct RuleScalars {
  float words[kMaxScalarWords] = {};
  // Not the rule's: every kernel multiplies the gradient by it before the rule sees it
  // (percentile_clipping's scale; exactly 1 otherwise, which changes no bit).
  float grad_scale = 1.0f;
};

template <class S>
RuleScalars pack_scalars(const S& scalars) {  // with grad_scale 1
  static_assert(sizeof(S) <= sizeof(RuleScalars), "a rule's Scalars must fit RuleScalars");
  RuleScalars packed;
  std::memcpy(packed.words, &scalars, sizeof(S));
  return packed;
}

template <class S>
OCTOPAGE_HOST_DEVICE OCTOPAGE_INLINE S unpack_scalars(const RuleScalars& packed) {
  S scalars;
  std::memcpy(&scalars, packed.words, sizeof(S));
  return scalars;
}

// Multiplies one field of a row's packed Scalars by `scale` (max_unorm's clipping of a
// rule's step size), grad_scale untouched.
template <class S>
void scale_field(RuleScalars& packed, float S::*field, float scale) {
  S scalars = unpack_scalars<S>(packed);
  scalars.*field *= scale;
  std::memcpy(packed.words, &scalars, sizeof(S));
}

template <class... T>
struct TypeList {
  static constexpr int kSize = sizeof...(T);
};

// One state of a kernel row: names in torch's and bitsandbytes' state_dict, and the
// dynamic code (signed or unsigned) it takes when 8-bit. Every state starts at zero.
struct StateSpec {
  const char* name;
  const char* bnb_name;
  bool is_signed;
};

// What a row declares besides its math, for the engine: its states (kNumStates of
// them), whether they may be 8-bit, and the words a user reads in messages about it.
struct RowSpec {
  const char* variant;                  // "amsgrad=True": what selects this row
  const char* quantizable_alternative;  // when not quantizable: what would be ("amsgrad=False")
  bool quantizable;
  int num_states;
  StateSpec states[kMaxStates];
};

enum class HyperKind : std::uint8_t { kReal, kFlag };

// One hyperparameter of a rule: `arity` values (betas: 2) at consecutive slots of the
// group's resolved values, each in [min, max] (max excluded when max_exclusive; an
// infinite max still asks for a finite value).
struct HyperSpec {
  const char* name;
  int arity;
  double defaults[3];
  HyperKind kind;
  double min;
  double max;
  bool max_exclusive;
};

inline constexpr double kUnbounded = __builtin_huge_val();

// The kernel rows of a list of rules, in order: RowCount<Rules>::value of them.
template <class Rules>
struct RowCount;
template <class... R>
struct RowCount<TypeList<R...>> {
  static constexpr int value = (R::Rows::kSize + ... + 0);
};

// Calls visit.template operator()<Rule, Row>(row) for every row of every rule in
// `Rules`, row counting from 0 across rules: how every backend fills its kernel table.
template <class Rule, class Visit, class... Rows>
void visit_rows(TypeList<Rows...>, int first, Visit& visit) {
  int row = first;
  (visit.template operator()<Rule, Rows>(row++), ...);
}
template <class Visit, class... R>
void for_each_row(TypeList<R...>, Visit&& visit) {
  int first = 0;
  ((visit_rows<R>(typename R::Rows{}, first, visit), first += R::Rows::kSize), ...);
}

}  // namespace octopage::rules
