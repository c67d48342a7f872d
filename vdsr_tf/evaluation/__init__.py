"""The literature's PSNR / SSIM protocol and the benchmark sets."""
