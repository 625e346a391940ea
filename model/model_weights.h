// The tensors of a Llama-family checkpoint, checked against ModelConfig and placed in backend
// memory once per node. CPU views point straight into the memory-mapped safetensors files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "model/model_config.h"

namespace tandem {

class SafetensorsCheckpoint;  // model/safetensors.h

struct LayerWeights {
  DeviceWeight input_norm;     // [1, hidden]            model.layers.N.input_layernorm.weight
  DeviceWeight q_proj;         // [heads*hd, hidden]
  DeviceWeight k_proj;         // [kv_heads*hd, hidden]
  DeviceWeight v_proj;         // [kv_heads*hd, hidden]
  DeviceWeight q_bias, k_bias, v_bias;  // [1, ...] only when config.attention_bias
  DeviceWeight o_proj;         // [hidden, heads*hd]
  DeviceWeight post_attn_norm; // [1, hidden]            post_attention_layernorm
  DeviceWeight gate_proj;      // [inter, hidden]
  DeviceWeight up_proj;        // [inter, hidden]
  DeviceWeight down_proj;      // [hidden, inter]
};

struct ModelWeights {
  ModelConfig config;
  DeviceWeight embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  DeviceWeight final_norm;    // [1, hidden]
  DeviceWeight lm_head;       // [vocab, hidden]; a second view of embed_tokens when tied
  // Keeps the mapped files alive while views point into them.
  std::shared_ptr<SafetensorsCheckpoint> checkpoint;
};

// Loads config.json (+ generation_config.json) and the safetensors of `model_dir`, checks every
// tensor's presence, shape and dtype against the config, and uploads them to `backend`.
// Errors name the file and the tensor (expected vs actual).
Result<std::unique_ptr<ModelWeights>> LoadModelWeights(const std::string& model_dir,
                                                       Backend& backend);

}  // namespace tandem
