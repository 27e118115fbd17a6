// Streaming read: the memory-bandwidth limit that GEMV figures are divided by.
//
// Every invocation reads 16-byte words (vec4<u32>), or 32-byte ones (vec4<u64>, WORDS_U64,
// where the device has shader-int64: lavapipe reads 18 GB/s that way against 10.8 in 16-byte
// loads, since each load is a loop over the SIMD lanes), and folds them into one word it
// writes out, so the reads cannot be optimised away. Two layouts, because the fast one
// differs by adapter kind:
//   LAYOUT_STRIDED  grid-stride loop: neighbouring invocations read neighbouring words
//                   (coalesced; what GPUs want)
//   LAYOUT_CHUNKED  each invocation reads one contiguous chunk (what CPU adapters want:
//                   their invocations are SIMD lanes of one core walking memory in order)

struct Params {
    words: u32,          // words (Word) in src
    invocations: u32,    // invocations in the whole dispatch
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#ifdef WORDS_U64
alias Word = vec4<u64>;

fn fold(a: Word) -> u32 {
    let b = a.x ^ a.y ^ a.z ^ a.w;
    return u32(b) ^ u32(b >> 32u);
}
#else
alias Word = vec4<u32>;

fn fold(a: Word) -> u32 {
    return a.x ^ a.y ^ a.z ^ a.w;
}
#endif

@group(0) @binding(1) var<storage, read> src: array<Word>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let id = (wg.y * p.groups_x + wg.x) * WG_SIZE + lid;
    if (id >= p.invocations) {
        return;
    }
    var acc = Word();
#ifdef LAYOUT_STRIDED
    for (var i = id; i < p.words; i = i + p.invocations) {
        acc = acc ^ src[i];
    }
#endif
#ifdef LAYOUT_CHUNKED
    let chunk = (p.words + p.invocations - 1u) / p.invocations;
    let start = id * chunk;
    let end = min(start + chunk, p.words);
    for (var i = start; i < end; i = i + 1u) {
        acc = acc ^ src[i];
    }
#endif
    sink[id] = fold(acc);
}
