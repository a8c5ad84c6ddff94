def test_patient_is_saved_encrypted(db):
    """A factory-made patient round-trips through encryption."""
    from tests.factories import PatientFactory

    patient = PatientFactory(given_name="Ada")
    patient.refresh_from_db()
    assert patient.given_name == "Ada"
