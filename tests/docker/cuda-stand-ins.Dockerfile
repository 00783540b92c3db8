# Stand-ins for NVIDIA's CUDA 13.0 `devel` and `runtime` images, on which
# tests/docker/check-dockerfile-cuda.sh builds and runs Dockerfile.cuda where NVIDIA's registry is
# out of reach. Debian with the CUDA root of heads/ai/cuda-build-root.sh (nvcc, headers and NVRTC
# from PyPI), laid out as NVIDIA's images are: /usr/local/cuda/{bin,include,nvvm,lib64}, nvcc on
# PATH, the libraries known to the loader. The driver, cuBLAS and cuRAND are that script's stubs,
# which answer every call with CUDA_ERROR_NO_DEVICE: the runtime stand-in is a host with a driver
# and no GPU.
ARG DEBIAN_IMAGE=debian:bookworm

FROM ${DEBIAN_IMAGE} AS devel
# The certificate authorities of this network's HTTPS proxy, if it has one (the host's own
# /usr/local/share/ca-certificates): Dockerfile.cuda's ca-certificates package takes them in.
COPY ca-certificates/ /usr/local/share/ca-certificates/
COPY cuda/bin/ /usr/local/cuda/bin/
COPY cuda/include/ /usr/local/cuda/include/
COPY cuda/nvvm/ /usr/local/cuda/nvvm/
COPY cuda/lib/ /usr/local/cuda/lib64/
RUN echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig
ENV PATH=/usr/local/cuda/bin:${PATH}

FROM ${DEBIAN_IMAGE} AS runtime
COPY --from=devel /usr/local/cuda/lib64/ /usr/local/cuda/lib64/
RUN echo /usr/local/cuda/lib64 > /etc/ld.so.conf.d/cuda.conf && ldconfig
