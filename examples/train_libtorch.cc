// A LibTorch training loop with octopage's AdamW8bit: the README's "C++ (LibTorch)"
// example, compiled and run by CTest so it stays true. Prints the loss and the state
// bytes; exits non-zero if training did not reduce the loss.
#include <torch/torch.h>

#include <iostream>

#include "octopage/torch/optim.h"

int main() {
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(512, 2048), torch::nn::GELU(), torch::nn::Linear(2048, 512));
  octopage::torch::AdamW8bit opt(model->parameters(), octopage::torch::AdamOptions(1e-3));
  torch::optim::StepLR scheduler(opt, /*step_size=*/50, /*gamma=*/0.5);
  double first_loss = 0.0, loss_value = 0.0;
  for (int step = 0; step < 100; ++step) {
    torch::Tensor x = torch::randn({64, 512});
    torch::Tensor loss = torch::mse_loss(model->forward(x), x);
    opt.zero_grad();
    loss.backward();
    opt.step();
    scheduler.step();
    loss_value = loss.item<double>();
    if (step == 0) first_loss = loss_value;
  }
  torch::save(opt, "optimizer.pt");  // torch::load(opt, "optimizer.pt") resumes
  std::cout << "loss " << first_loss << " -> " << loss_value << ", state bytes in RAM "
            << opt.memory_report().state_bytes_in(octopage::Tier::kHost) << "\n";
  return loss_value < 0.5 * first_loss ? 0 : 1;
}
