// Per-target SIMD decode and encode of 8-bit block-wise state: decode is one table
// gather per vector (byte lookups with VBMI), encode the bucket lookup of Note [Q8 bucket
// encoder], or with AVX-512 the multiply-add of Note [Q8 affine encoder] and that lookup
// for the vectors it flags. All give exactly the codes of the scalar reference
// (src/quant/q8_reference.h).

#if defined(OCTOPAGE_KERNELS_CPU_Q8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef OCTOPAGE_KERNELS_CPU_Q8_INL_H_
#undef OCTOPAGE_KERNELS_CPU_Q8_INL_H_
#else
#define OCTOPAGE_KERNELS_CPU_Q8_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "hwy/highway.h"
#include "src/quant/dynamic_code.h"
#include "src/quant/q8_affine_table.h"
#include "src/quant/q8_bucket_table.h"
#include "src/quant/q8_lookup_tables.h"
#include "src/kernels/cpu/q8_affine-inl.h"
#include "src/kernels/cpu/q8_vbmi-inl.h"

HWY_BEFORE_NAMESPACE();
namespace octopage::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// What the SIMD code needs of one code and its bucket table, as plain values.
struct Q8Codebook {
  const quant::Q8LookupTables* lookup = nullptr;  // the byte-lookup path's tables
  const quant::Q8AffineTable* affine = nullptr;    // and its arithmetic encoder's
  const float* values = nullptr;
  const std::int32_t* entries = nullptr;
  int low_bits = 0;
  std::int32_t first_key_minus_one = 0;
  std::int32_t last_bucket = 0;
  std::int32_t num_buckets = 0;

  static Q8Codebook of(bool is_signed) {
    const quant::DynamicCode& code = is_signed ? quant::signed_code() : quant::unsigned_code();
    const quant::Q8BucketTable& table =
        is_signed ? quant::signed_bucket_table() : quant::unsigned_bucket_table();
    Q8Codebook book;
    book.lookup = is_signed ? &quant::signed_lookup_tables() : &quant::unsigned_lookup_tables();
    book.affine = is_signed ? &quant::signed_affine_table() : &quant::unsigned_affine_table();
    book.values = code.values.data();
    book.entries = reinterpret_cast<const std::int32_t*>(table.entries.data());
    book.low_bits = table.low_bits;
    book.first_key_minus_one = static_cast<std::int32_t>(table.first_key) - 1;
    book.last_bucket = table.num_buckets - 1;
    book.num_buckets = table.num_buckets;
    return book;
  }
};

// values[codes[i]] * absmax for Lanes(d) codes.
template <class D>
HWY_INLINE hn::Vec<D> decode_q8(D d, const Q8Codebook& book, const std::uint8_t* codes,
                               hn::Vec<D> absmax) {
  const hn::Rebind<std::int32_t, D> di;
  const hn::Rebind<std::uint8_t, D> du8;
  const auto index = hn::PromoteTo(di, hn::LoadU(du8, codes));
  return hn::Mul(hn::GatherIndex(d, book.values, index), absmax);
}

// The codes of normalized values x, as int32 lanes. kSigned selects the sign half of
// the bucket table by x's sign bit; the unsigned code is only given x >= 0.
template <bool kSigned, class D>
HWY_INLINE hn::Vec<hn::Rebind<std::int32_t, D>> encode_q8(D d, const Q8Codebook& book,
                                                          hn::Vec<D> x) {
  const hn::Rebind<std::int32_t, D> di;
  const hn::Rebind<std::uint32_t, D> du;
  const auto bits = hn::BitCast(di, x);
  const auto abs_bits = hn::And(bits, hn::Set(di, 0x7FFFFFFF));
  auto bucket = hn::Sub(hn::ShiftRightSame(abs_bits, book.low_bits),
                        hn::Set(di, book.first_key_minus_one));
  bucket = hn::Min(hn::Max(bucket, hn::Zero(di)), hn::Set(di, book.last_bucket));
  auto step = hn::Set(di, 1);
  if constexpr (kSigned) {
    const auto negative = bits < hn::Zero(di);
    bucket = hn::IfThenElse(negative, hn::Add(bucket, hn::Set(di, book.num_buckets)), bucket);
    step = hn::IfThenElse(negative, hn::Set(di, -1), step);
  }
  const auto entry = hn::GatherIndex(di, book.entries, bucket);
  const auto base = hn::BitCast(di, hn::ShiftRight<24>(hn::BitCast(du, entry)));
  const auto threshold = hn::And(entry, hn::Set(di, 0xFFFFFF));
  const auto low = hn::And(abs_bits, hn::Set(di, (1 << book.low_bits) - 1));
  const auto moves = low > hn::Sub(threshold, hn::Set(di, 1));  // low >= threshold
  return hn::Add(base, hn::IfThenElseZero(moves, step));
}

// Encodes Lanes(d) values times `scale` and stores their codes.
template <bool kSigned, class D>
HWY_INLINE void encode_and_store_q8(D d, const Q8Codebook& book, const float* values,
                                 hn::Vec<D> scale, std::uint8_t* codes) {
  const hn::Rebind<std::uint8_t, D> du8;
  const auto x = hn::Mul(hn::LoadU(d, values), scale);
  hn::StoreU(hn::DemoteTo(du8, encode_q8<kSigned>(d, book, x)), du8, codes);
}

// Decodes the block codes[0, n), n <= kQ8BlockSize, to values[0, n).
HWY_INLINE void decode_block_q8(const Q8Codebook& book, const std::uint8_t* codes, std::size_t n,
                              float absmax, float* values) {
#if HWY_TARGET == HWY_AVX3_DL
  for (std::size_t i = 0; i < n; i += 64) {
    vbmi::decode64(*book.lookup, codes + i, vbmi::first_n64(n - i), absmax, values + i);
  }
#else
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(decode_q8(d, book, codes + i, hn::Set(d, absmax)), d, values + i);
  for (; i < n; ++i) hn::StoreU(decode_q8(d1, book, codes + i, hn::Set(d1, absmax)), d1, values + i);
#endif
}

// Quantizes the block values[0, n), n <= kQ8BlockSize, whose max |value| is absmax
// (Note [Block absmax]). The byte-lookup path reads values up to the next multiple of 64,
// so values[] must have that many elements (a block buffer of kQ8BlockSize does).
template <bool kSigned>
HWY_INLINE void encode_block_q8(const Q8Codebook& book, const float* values, std::size_t n,
                              float absmax, std::uint8_t* codes) {
  const float scale = absmax > 0.0f ? 1.0f / absmax : 1.0f;  // See Note [Block absmax]
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
  for (std::size_t i = 0; i < n; i += 64) {
    __m512i block_codes;
    if (!affine::try_encode64<kSigned>(*book.affine, values + i, _mm512_set1_ps(scale), &block_codes)) {
#if HWY_TARGET == HWY_AVX3_DL
      block_codes = vbmi::encode64_by_lookup<kSigned>(*book.lookup, values + i, _mm512_set1_ps(scale));
#else
      const hn::ScalableTag<float> d;
      HWY_ALIGN std::uint8_t bytes[64];
      for (std::size_t q = 0; q < 64; q += hn::Lanes(d)) {
        encode_and_store_q8<kSigned>(d, book, values + i + q, hn::Set(d, scale), bytes + q);
      }
      block_codes = _mm512_load_si512(bytes);
#endif
    }
    _mm512_mask_storeu_epi8(codes + i, affine::first_n64(n - i), block_codes);
  }
#else
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 1> d1;
  const std::size_t N = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + N <= n; i += N) encode_and_store_q8<kSigned>(d, book, values + i, hn::Set(d, scale), codes + i);
  for (; i < n; ++i) encode_and_store_q8<kSigned>(d1, book, values + i, hn::Set(d1, scale), codes + i);
#endif
}

}  // namespace octopage::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // OCTOPAGE_KERNELS_CPU_Q8_INL_H_
