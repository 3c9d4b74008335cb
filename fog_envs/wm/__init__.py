"""World models: latent autoencoder, EDM diffusion (global), RSSM (local), reward model, bundles."""
