//! A weight matrix resident on the GPU, in its storage dtype, split by rows into parts that
//! each fit one binding.
//!
//! Why split: a storage binding is capped by `max_storage_buffer_binding_size` (128 MiB on
//! lavapipe and llvmpipe, 2–4 GiB on discrete GPUs) and a buffer by `max_buffer_size`, while a
//! Llama-3 embedding in f16 is 1 GiB. WGSL indexes with u32, so a part also stays under 2^32
//! elements. Every part is an independent (rows × cols) matrix starting at byte 0 of its own
//! buffer, so kernels see whole rows and only need to know where their rows land in the
//! output (`first_row`).
//!
//! Why bounded staging: `queue.write_buffer` copies into a wgpu staging buffer that lives until
//! the submission that consumes it completes. Writing a 4 GiB tensor in one call would allocate
//! 4 GiB of host staging on top of the mmap; writing [`STAGING_CHUNK`] at a time with at most
//! two chunks in flight keeps it at 128 MiB whatever the model size.

use super::{DeviceError, Gpu};
use crate::dtype::StorageDType;
use std::ops::Range;

/// Every storage buffer's size is a multiple of this: kernels view weights and activations as
/// `array<vec4<u32>>` or `array<vec4<u64>>` (16- and 32-byte loads, which cost what a word load
/// does on CPU adapters), and then every byte must lie in a whole vector. Beyond wgpu's 4-byte
/// copy alignment, this costs at most 28 bytes per buffer.
pub const BUFFER_ALIGN: u64 = 32;

/// Bytes written per `write_buffer` call while uploading.
pub const STAGING_CHUNK: u64 = 64 << 20;

/// One row range of a tensor in its own buffer.
pub struct TensorPart {
    pub buffer: wgpu::Buffer,
    /// The part's first row in the whole tensor (where its outputs go).
    pub first_row: u32,
    pub rows: u32,
    /// Bytes of weight data (the buffer is padded to a multiple of [`BUFFER_ALIGN`]).
    pub bytes: u64,
}

/// A 2D weight tensor on the GPU: `rows` × `cols` elements of `dtype`, row-major, in parts.
pub struct GpuTensor {
    pub name: String,
    pub dtype: StorageDType,
    pub rows: u32,
    pub cols: u32,
    pub parts: Vec<TensorPart>,
}

impl GpuTensor {
    /// Total bytes of weight data on the device.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// What one part may hold: bytes (the binding and buffer limits) and elements (u32 indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartLimits {
    pub max_bytes: u64,
    pub max_elements: u64,
}

impl PartLimits {
    /// The limits of an adapter: the smaller of its binding and buffer limits, and u32 indices.
    pub fn of(gpu: &Gpu) -> Self {
        let l = &gpu.caps.summary.limits;
        Self::from_limits(l.max_storage_buffer_binding_size, l.max_buffer_size)
    }

    pub fn from_limits(max_binding: u64, max_buffer: u64) -> Self {
        Self {
            // Parts are padded to whole vectors.
            max_bytes: max_binding.min(max_buffer) / BUFFER_ALIGN * BUFFER_ALIGN,
            max_elements: u64::from(u32::MAX),
        }
    }
}

/// Why a tensor cannot be laid out on a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    #[error("a row of {cols} elements is not a whole number of {dtype} blocks ({} elements each)", dtype.block().elements)]
    PartialBlocks { dtype: StorageDType, cols: u64 },
    #[error("one row needs {row_bytes} bytes, more than one binding can hold ({max_bytes}); a row cannot be split")]
    RowTooLarge { row_bytes: u64, max_bytes: u64 },
    #[error("{rows} rows do not fit the u32 row index the kernels use")]
    TooManyRows { rows: u64 },
}

/// The row ranges a `rows` × `cols` tensor of `dtype` is split into: as few as possible, of
/// equal size except the last, each within `limits`.
pub fn split_rows(
    dtype: StorageDType,
    rows: u64,
    cols: u64,
    limits: PartLimits,
) -> Result<Vec<Range<u64>>, SplitError> {
    if rows > u64::from(u32::MAX) {
        return Err(SplitError::TooManyRows { rows });
    }
    let row_bytes = dtype
        .bytes_for(cols)
        .ok_or(SplitError::PartialBlocks { dtype, cols })?;
    // A part of n rows occupies n * row_bytes rounded up to a whole vector.
    let fits = |n: u64| {
        (n * row_bytes).div_ceil(BUFFER_ALIGN) * BUFFER_ALIGN <= limits.max_bytes
            && n * cols <= limits.max_elements
    };
    if !fits(1) {
        return Err(SplitError::RowTooLarge {
            row_bytes,
            max_bytes: limits.max_bytes,
        });
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    let mut per_part = (limits.max_bytes / row_bytes.max(1))
        .min(limits.max_elements / cols.max(1))
        .clamp(1, rows);
    while !fits(per_part) {
        per_part -= 1;
    }
    // Balance the parts: the same number of parts, rows spread evenly.
    let parts = rows.div_ceil(per_part);
    let per_part = rows.div_ceil(parts);
    Ok((0..parts)
        .map(|i| i * per_part..((i + 1) * per_part).min(rows))
        .collect())
}

/// Called with the bytes written so far and the total, after every staging chunk.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Writes `bytes` into `buffer` at offset 0 in [`STAGING_CHUNK`] pieces, with at most two in
/// flight, padding the tail to wgpu's 4-byte copy alignment.
pub fn write_chunked(
    gpu: &Gpu,
    what: &str,
    buffer: &wgpu::Buffer,
    bytes: &[u8],
    progress: Progress,
    (done_before, total): (u64, u64),
) -> Result<(), DeviceError> {
    let mut in_flight: Option<wgpu::SubmissionIndex> = None;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let end = (offset + STAGING_CHUNK as usize).min(bytes.len());
        let chunk = &bytes[offset..end];
        let aligned = chunk.len() / 4 * 4;
        let index = gpu.scoped(&format!("uploading {what}"), chunk.len() as u64, || {
            if aligned > 0 {
                gpu.queue
                    .write_buffer(buffer, offset as u64, &chunk[..aligned]);
            }
            if aligned < chunk.len() {
                let mut tail = [0u8; 4];
                tail[..chunk.len() - aligned].copy_from_slice(&chunk[aligned..]);
                gpu.queue
                    .write_buffer(buffer, (offset + aligned) as u64, &tail);
            }
            gpu.queue.submit([])
        })?;
        if let Some(previous) = in_flight.replace(index) {
            gpu.wait_for(&format!("uploading {what}"), previous)?;
        }
        offset = end;
        progress(done_before + offset as u64, total);
    }
    if let Some(last) = in_flight {
        gpu.wait_for(&format!("uploading {what}"), last)?;
    }
    Ok(())
}

/// Uploads a `rows` × `cols` tensor of `dtype` from `bytes` (e.g. an mmap'd file's slice),
/// split by [`split_rows`] under `limits`. Every allocation is checked; running out of memory
/// is an error naming the tensor, the part and the bytes requested.
pub fn upload_tensor(
    gpu: &Gpu,
    name: &str,
    dtype: StorageDType,
    (rows, cols): (u32, u32),
    bytes: &[u8],
    limits: PartLimits,
    progress: Progress,
) -> Result<GpuTensor, DeviceError> {
    let bad = |detail: String| DeviceError::Validation {
        what: format!("laying out tensor '{name}'"),
        detail,
    };
    let ranges =
        split_rows(dtype, rows.into(), cols.into(), limits).map_err(|e| bad(e.to_string()))?;
    let row_bytes = dtype.bytes_for(cols.into()).unwrap_or(0);
    let total = row_bytes * u64::from(rows);
    if bytes.len() as u64 != total {
        return Err(bad(format!(
            "{} bytes given, {rows}x{cols} {dtype} needs {total}",
            bytes.len()
        )));
    }
    let mut parts = Vec::with_capacity(ranges.len());
    let n = ranges.len();
    for (i, r) in ranges.into_iter().enumerate() {
        let label = if n == 1 {
            format!("tensor '{name}'")
        } else {
            format!(
                "tensor '{name}' part {}/{n} (rows {}..{})",
                i + 1,
                r.start,
                r.end
            )
        };
        let slice = &bytes[(r.start * row_bytes) as usize..(r.end * row_bytes) as usize];
        let buffer = gpu.storage(&label, slice.len() as u64)?;
        write_chunked(
            gpu,
            &label,
            &buffer,
            slice,
            progress,
            (r.start * row_bytes, total),
        )?;
        parts.push(TensorPart {
            buffer,
            first_row: r.start as u32,
            rows: (r.end - r.start) as u32,
            bytes: slice.len() as u64,
        });
    }
    Ok(GpuTensor {
        name: name.to_string(),
        dtype,
        rows,
        cols,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64) -> PartLimits {
        PartLimits {
            max_bytes,
            max_elements: u64::from(u32::MAX),
        }
    }

    #[test]
    fn one_part_when_it_fits() {
        assert_eq!(
            split_rows(StorageDType::F32, 10, 4, limits(1 << 20)).unwrap(),
            vec![0..10]
        );
    }

    #[test]
    fn parts_are_balanced_and_cover_every_row() {
        // 1 GiB of f16 embedding (128256 x 4096) under a 128 MiB binding: 8 parts of 16032 rows.
        let r = split_rows(StorageDType::F16, 128_256, 4096, limits(128 << 20)).unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r[0], 0..16_032);
        assert_eq!(r.last().unwrap().end, 128_256);
        for w in r.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        for p in &r {
            assert!((p.end - p.start) * 8192 <= 128 << 20);
        }
    }

    #[test]
    fn odd_row_bytes_are_padded_within_the_limit() {
        // f16 rows of 3 elements are 6 bytes: 11 rows are 66 bytes, padded to 96 > 70, so
        // parts of at most 10 rows (60 bytes, padded to 64).
        let r = split_rows(StorageDType::F16, 25, 3, limits(70)).unwrap();
        assert!(
            r.iter()
                .all(|p| ((p.end - p.start) * 6).div_ceil(BUFFER_ALIGN) * BUFFER_ALIGN <= 70),
            "{r:?}"
        );
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r.last().unwrap().end, 25);
    }

    #[test]
    fn element_limit_splits_too() {
        let l = PartLimits {
            max_bytes: u64::MAX,
            max_elements: 100,
        };
        let r = split_rows(StorageDType::F32, 25, 10, l).unwrap();
        assert!(r.iter().all(|p| (p.end - p.start) * 10 <= 100));
        assert_eq!(r.len(), 3);
    }

    /// `plan` and `inspect` count bindings from bytes alone; they must agree with the
    /// uploader's split.
    #[test]
    fn the_plan_counts_the_parts_the_uploader_makes() {
        for (dtype, rows, cols) in [
            (StorageDType::F16, 128_256u64, 4096u64),
            (StorageDType::Q4K, 128_256, 4096),
            (StorageDType::F32, 14_336, 4096),
            (StorageDType::Q8_0, 152_064, 3584),
        ] {
            let limit = 128u64 << 20;
            let bytes = dtype.bytes_for(rows * cols).unwrap();
            let parts = split_rows(dtype, rows, cols, limits(limit)).unwrap().len() as u64;
            assert_eq!(
                crate::plan::bindings_needed(bytes, &[rows, cols], limit),
                Some(parts),
                "{dtype} {rows}x{cols}"
            );
        }
    }

    #[test]
    fn impossible_layouts_are_errors() {
        assert_eq!(
            split_rows(StorageDType::F32, 2, 100, limits(256)),
            Err(SplitError::RowTooLarge {
                row_bytes: 400,
                max_bytes: 256
            })
        );
        assert!(matches!(
            split_rows(StorageDType::Q4_0, 2, 33, limits(1 << 20)),
            Err(SplitError::PartialBlocks { .. })
        ));
    }
}
