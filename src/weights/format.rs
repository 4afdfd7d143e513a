//! Weights to safetensors bytes and back. Reading checks what a damaged or foreign file can
//! get wrong (header, offsets, dtype, non-finite values) and says which tensor of which file.

use super::{FORMAT, FORMAT_VERSION, Tensor, Weights};
use anyhow::{Result, anyhow, bail};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;

/// The file's bytes: tensors as little-endian f32, metadata as safetensors' string map.
pub fn encode(weights: &Weights) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = weights
        .tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = weights
        .tensors
        .iter()
        .zip(&bytes)
        .map(|(t, data)| {
            Ok((
                t.name.clone(),
                TensorView::new(Dtype::F32, t.shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| anyhow!("cannot encode the weights: {e}"))?;
    let metadata: HashMap<String, String> = weights
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| anyhow!("cannot encode the weights: {e}"))
}

/// Reads the bytes of `source` (a path, for messages). Every tensor must be finite f32; a file
/// gradlab wrote must not be of a newer format version. Tensors come back in file order.
pub fn decode(bytes: &[u8], source: &str) -> Result<Weights> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("{source} is not a readable safetensors file: {e}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("{source} is not a readable safetensors file: {e}"))?;
    let metadata: std::collections::BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if metadata.get("format").map(String::as_str) == Some(FORMAT) {
        let version = metadata.get("format_version").map(String::as_str);
        match version.and_then(|v| v.parse::<u64>().ok()) {
            Some(v) if v <= FORMAT_VERSION => {}
            Some(v) => bail!(
                "{source} is gradlab weights format version {v}; this gradlab {} reads up to \
                 {FORMAT_VERSION}: upgrade gradlab",
                env!("CARGO_PKG_VERSION")
            ),
            None => bail!(
                "{source}: the format_version metadata `{}` is not a version number",
                version.unwrap_or("")
            ),
        }
    }
    // The header lists tensors in offset order; keep it, so files read back as written.
    let mut tensors = Vec::new();
    for name in header.offset_keys() {
        let view = file
            .tensor(&name)
            .map_err(|e| anyhow!("{source}: tensor `{name}`: {e}"))?;
        if view.dtype() != Dtype::F32 {
            bail!(
                "{source}: tensor `{name}` holds {:?} values; gradlab reads F32 \
                 (numpy: w.astype(np.float32))",
                view.dtype()
            );
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{source}: tensor `{name}` holds {} at index {at}; a network cannot start from \
                 NaN/Inf",
                values[at]
            );
        }
        tensors.push(Tensor {
            name,
            shape: view.shape().to_vec(),
            values,
        });
    }
    Ok(Weights {
        tensors,
        metadata,
        source: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Weights {
        let mut weights = Weights::default();
        weights.tensors.push(Tensor {
            name: "layer1.weight".into(),
            shape: vec![2, 3],
            values: vec![1.0, -2.5, 3.25, f32::MIN_POSITIVE, 0.1, -0.0],
        });
        weights.tensors.push(Tensor {
            name: "layer1.bias".into(),
            shape: vec![3],
            values: vec![0.5, 0.25, 0.125],
        });
        weights.metadata.insert("format".into(), FORMAT.into());
        weights
            .metadata
            .insert("format_version".into(), FORMAT_VERSION.to_string());
        weights
    }

    #[test]
    fn weights_survive_the_round_trip_bit_for_bit() {
        let weights = sample();
        let bytes = encode(&weights).expect("encodes");
        let back = decode(&bytes, "x.safetensors").expect("decodes");
        assert_eq!(back.metadata, weights.metadata);
        for t in &weights.tensors {
            let read = back.get(&t.name).expect("tensor present");
            assert_eq!(read.shape, t.shape);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&read.values), bits(&t.values));
        }
    }

    #[test]
    fn damaged_and_foreign_files_are_refused_with_the_file_named() {
        let bytes = encode(&sample()).expect("encodes");
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            let error = decode(&bytes[..cut], "cut.safetensors")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with("cut.safetensors"), "{error}");
        }
        let mut newer = sample();
        newer.metadata.insert("format_version".into(), "99".into());
        let error = decode(&encode(&newer).expect("encodes"), "new.safetensors")
            .unwrap_err()
            .to_string();
        assert!(error.contains("format version 99"), "{error}");
        let mut nan = sample();
        nan.tensors[1].values[2] = f32::NAN;
        let error = decode(&encode(&nan).expect("encodes"), "nan.safetensors")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`layer1.bias` holds NaN at index 2"),
            "{error}"
        );
        let f64_file = safetensors::serialize(
            [(
                "w",
                TensorView::new(Dtype::F64, vec![1], &[0u8; 8]).expect("view"),
            )],
            None,
        )
        .expect("encodes");
        let error = decode(&f64_file, "f64.safetensors")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`w` holds F64"), "{error}");
    }
}
