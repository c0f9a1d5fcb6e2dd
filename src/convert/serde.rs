//! `Serialize`/`Deserialize` for tensors (feature `serde`): a tensor is written
//! as its values, `{"shape": [2, 3], "data": [..6 numbers, row-major..]}`,
//! whatever its strides; reading checks that the data fits the shape. Only the
//! values travel: the result of deserialising is a plain tensor that records
//! nothing (call `requires_grad()` on it to train it). The optimizers' configs
//! and `GradCheck` derive both traits under the same feature.

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::element::Element;
use crate::tensor::Tensor;

impl<T: Element + Serialize> Serialize for Tensor<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Tensor", 2)?;
        s.serialize_field("shape", self.shape())?;
        s.serialize_field("data", &self.to_vec())?;
        s.end()
    }
}

/// The serialised form, read back.
#[derive(Deserialize)]
#[serde(rename = "Tensor", deny_unknown_fields)]
struct Values<T> {
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<'de, T: Element + Deserialize<'de>> Deserialize<'de> for Tensor<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Values { shape, data } = Values::<T>::deserialize(deserializer)?;
        Tensor::from_vec(data, &shape).map_err(D::Error::custom)
    }
}
