"""ONVIF service endpoints of the simulated device: device management, media, PTZ and imaging."""
