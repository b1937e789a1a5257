"""The RTL blocks of the accelerator, each in one module with its cycle model and resource model beside
its Amaranth description. Blocks read only bebert.hw.design and bebert.hw.resources."""
