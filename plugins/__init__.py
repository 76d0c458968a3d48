"""Bundled MedDAV plugins, one package each (patient_delivery, imaging_codes, ehr_bridge).

They register through the ``meddav`` entry-point group like third-party
plugins; the plugin system itself lives in ``server.hooks`` (plugin issue).
"""
