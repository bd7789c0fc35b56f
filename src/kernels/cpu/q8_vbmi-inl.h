// 8-bit decode and encode 64 values at a time with AVX-512 VBMI byte lookups (vpermi2b
// looks up 64 bytes in a 128-byte table per instruction), for Highway's AVX3_DL target.
// Gathers cost about one cycle per value on current CPUs; these cost a fraction. The
// encoder here is the fallback of q8_affine-inl.h's. Same codes as the reference: see
// Note [Q8 byte-lookup encoder]. Raw intrinsics, since Highway 1.0 has no two-table byte
// lookup.

#if defined(OCTOPAGE_KERNELS_CPU_Q8_VBMI_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef OCTOPAGE_KERNELS_CPU_Q8_VBMI_INL_H_
#undef OCTOPAGE_KERNELS_CPU_Q8_VBMI_INL_H_
#else
#define OCTOPAGE_KERNELS_CPU_Q8_VBMI_INL_H_
#endif

#include <array>
#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "src/kernels/cpu/q8_affine-inl.h"
#include "src/quant/q8_lookup_tables.h"

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

HWY_BEFORE_NAMESPACE();
namespace octopage::kernels::cpu::HWY_NAMESPACE {
namespace vbmi {

using affine::first_n64;
using affine::join_masks;
using affine::mirror_negative;

// Byte positions after the plane transpose below: position 16L + 4k + d of the
// transposed order holds element 16k + 4L + d, so permuting by this index first makes
// the four dword vectors come out as elements 0-15, 16-31, 32-47 and 48-63.
alignas(64) inline constexpr std::uint8_t kTransposeOrder[64] = {
    0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,
    4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,
    8, 9, 10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,
    12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63};

// Word w of two dword vectors' high halves: word 2w + 1 of their concatenation.
alignas(64) inline constexpr std::uint16_t kHighWords[32] = {
    1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
    33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};

// Byte b of two word vectors' low bytes: byte 2b of their concatenation (mod 128).
alignas(64) inline constexpr std::uint8_t kLowBytes[64] = {
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
    32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
    64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94,
    96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120, 122, 124, 126};

HWY_INLINE __m512i load_bytes(const void* p) { return _mm512_loadu_si512(p); }

// table[index] for a 256-byte table; `high` is bit 7 of every index.
HWY_INLINE __m512i lookup256(const std::uint8_t* table, __m512i index, __mmask64 high) {
  const __m512i low_half = _mm512_permutex2var_epi8(load_bytes(table), index, load_bytes(table + 64));
  const __m512i high_half = _mm512_permutex2var_epi8(load_bytes(table + 128), index, load_bytes(table + 192));
  return _mm512_mask_blend_epi8(high, low_half, high_half);
}

// Four byte planes (in transposed order) to four vectors of 16 dwords in element order.
HWY_INLINE void planes_to_dwords(const __m512i (&plane)[4], __m512i (&dwords)[4]) {
  const __m512i lo01 = _mm512_unpacklo_epi8(plane[0], plane[1]);
  const __m512i hi01 = _mm512_unpackhi_epi8(plane[0], plane[1]);
  const __m512i lo23 = _mm512_unpacklo_epi8(plane[2], plane[3]);
  const __m512i hi23 = _mm512_unpackhi_epi8(plane[2], plane[3]);
  dwords[0] = _mm512_unpacklo_epi16(lo01, lo23);
  dwords[1] = _mm512_unpackhi_epi16(lo01, lo23);
  dwords[2] = _mm512_unpacklo_epi16(hi01, hi23);
  dwords[3] = _mm512_unpackhi_epi16(hi01, hi23);
}

// table[index & 127] for a 128-byte table.
HWY_INLINE __m512i lookup128(const std::uint8_t* table, __m512i index) {
  return _mm512_permutex2var_epi8(load_bytes(table), index, load_bytes(table + 64));
}

// The 32-bit entries of a table stored as 4 byte planes, for 64 byte indices, in element
// order as 4 x 16 dwords. kEntries 256: planes[j][index]; kEntries 128: the 128 entries
// from planes[j][first], picked by the index's low 7 bits.
template <std::size_t kEntries>
HWY_INLINE void lookup_dwords(const std::array<std::array<std::uint8_t, 256>, 4>& planes,
                             std::size_t first, __m512i index, __m512i (&dwords)[4]) {
  static_assert(kEntries == 256 || kEntries == 128);
  const __m512i transposed = _mm512_permutexvar_epi8(load_bytes(kTransposeOrder), index);
  __m512i plane[4];
  if constexpr (kEntries == 256) {
    const __mmask64 high = _mm512_movepi8_mask(transposed);
    for (int j = 0; j < 4; ++j) plane[j] = lookup256(planes[j].data(), transposed, high);
  } else {
    for (int j = 0; j < 4; ++j) plane[j] = lookup128(planes[j].data() + first, transposed);
  }
  planes_to_dwords(plane, dwords);
}

// Decodes 64 codes (`valid` says which exist) to values[0, 64), times absmax.
HWY_INLINE void decode64(const quant::Q8LookupTables& t, const std::uint8_t* codes,
                         __mmask64 valid, float absmax, float* values) {
  __m512i bits[4];
  lookup_dwords<256>(t.value_planes, 0, _mm512_maskz_loadu_epi8(valid, codes), bits);
  const __m512 scale = _mm512_set1_ps(absmax);
  for (int q = 0; q < 4; ++q) {
    _mm512_storeu_ps(values + 16 * q, _mm512_mul_ps(_mm512_castsi512_ps(bits[q]), scale));
  }
}

// Bucket indices (Note [Q8 byte-lookup encoder], step 1) of 32 magnitudes' top words.
HWY_INLINE __m512i bucket_index(const quant::Q8LookupTables& t, __m512i top_words) {
  const __m512i exponent = _mm512_srli_epi16(top_words, 7);
  const __m512i slot = _mm512_subs_epu16(exponent, _mm512_set1_epi16(static_cast<short>(t.first_exponent - 1)));
  const __m512i offset = _mm512_permutexvar_epi16(slot, load_bytes(t.bucket_offset.data()));
  const __m512i shift = _mm512_permutexvar_epi16(slot, load_bytes(t.bucket_shift.data()));
  const __m512i mantissa = _mm512_and_si512(top_words, _mm512_set1_epi16(0x7F));
  return _mm512_add_epi16(offset, _mm512_srlv_epi16(mantissa, shift));
}


// The codes of values[0, 64) * scale, in element order (Note [Q8 byte-lookup encoder]).
template <bool kSigned>
HWY_NOINLINE __m512i encode64_by_lookup(const quant::Q8LookupTables& t, const float* values, __m512 scale) {
  __m512 x[4];
  __m512i magnitude[4];
  for (int k = 0; k < 4; ++k) {
    x[k] = _mm512_mul_ps(_mm512_loadu_ps(values + 16 * k), scale);
    magnitude[k] = _mm512_and_si512(_mm512_castps_si512(x[k]), _mm512_set1_epi32(0x7FFFFFFF));
  }
  // The top 16 bits of each x, in element order: sign, exponent, 7 mantissa bits.
  const __m512i high_words = load_bytes(kHighWords);
  const __m512i top01 = _mm512_permutex2var_epi16(_mm512_castps_si512(x[0]), high_words, _mm512_castps_si512(x[1]));
  const __m512i top23 = _mm512_permutex2var_epi16(_mm512_castps_si512(x[2]), high_words, _mm512_castps_si512(x[3]));
  const __m512i no_sign = _mm512_set1_epi16(0x7FFF);
  const __m512i index01 = bucket_index(t, _mm512_and_si512(top01, no_sign));
  const __m512i index23 = bucket_index(t, _mm512_and_si512(top23, no_sign));
  const __m512i index = _mm512_permutex2var_epi8(index01, load_bytes(kLowBytes), index23);
  __m512i base = lookup256(t.bucket_base.data(), index, _mm512_movepi8_mask(index));
  if (t.num_buckets > 256) {  // bit 8 of the bucket index picks the second 256 bytes
    const __mmask64 above = _mm512_kunpackd(_mm512_movepi16_mask(_mm512_slli_epi16(index23, 7)),
                                            _mm512_movepi16_mask(_mm512_slli_epi16(index01, 7)));
    const __m512i upper = lookup256(t.bucket_base.data() + 256, index, _mm512_movepi8_mask(index));
    base = _mm512_mask_blend_epi8(above, base, upper);
  }
  // The code moves from base to base + 1 at threshold[base]; saturating, so that base 255
  // stays (its 128-entry half-table lookup wraps; the unsigned one says "stay" anyway).
  __m512i threshold[4];
  if constexpr (kSigned) {  // base >= 127: the positive half, one byte lookup per plane
    lookup_dwords<128>(t.threshold_planes, 127, _mm512_subs_epu8(base, _mm512_set1_epi8(127)), threshold);
  } else {
    lookup_dwords<256>(t.threshold_planes, 0, base, threshold);
  }
  const __mmask64 moves = join_masks(_mm512_cmpge_epu32_mask(magnitude[0], threshold[0]),
                               _mm512_cmpge_epu32_mask(magnitude[1], threshold[1]),
                               _mm512_cmpge_epu32_mask(magnitude[2], threshold[2]),
                               _mm512_cmpge_epu32_mask(magnitude[3], threshold[3]));
  __m512i code = _mm512_mask_adds_epu8(base, moves, base, _mm512_set1_epi8(1));
  if constexpr (kSigned) {
    code = mirror_negative(code, _mm512_kunpackd(_mm512_movepi16_mask(top23), _mm512_movepi16_mask(top01)));
  }
  return code;
}


}  // namespace vbmi
}  // namespace octopage::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // OCTOPAGE_KERNELS_CPU_Q8_VBMI_INL_H_
